"""Which temporary names a write may throw away (flows/destinations/store.py): only names of
its own target, and of its own run unless the Prefect API says another run is over (these
cases never ask the API: there is no other run's name, or none it could know)."""

from __future__ import annotations

import pytest

from flows.destinations.store import (
    leftover_prefix,
    removable_paths,
    temporary_path,
    temporary_writer,
)

pytestmark = pytest.mark.unit

RUN = "0b3c5f0e-6d3b-4a57-9a51-0d3f1c7e2a10"


def test_a_temporary_name_names_its_run_and_its_target() -> None:
    temp = temporary_path("bucket/daily/orders.csv", RUN)
    prefix = leftover_prefix("bucket/daily/orders.csv")
    assert prefix == "bucket/daily/.orders.csv."
    assert temporary_writer(temp, prefix) == RUN
    # Another target whose name starts alike, a final file, a name in a sub-folder: not ours.
    assert temporary_writer(temporary_path("bucket/daily/orders.csv.gz", RUN), prefix) != RUN
    assert temporary_writer("bucket/daily/orders.csv", prefix) is None
    assert temporary_writer(f"{prefix}x/{RUN}-0123abcd.tmp", prefix) is None


def test_a_run_throws_away_its_own_names_and_keeps_the_rest() -> None:
    prefix = leftover_prefix("bucket/orders.csv")
    own = temporary_path("bucket/orders.csv", RUN)
    others = [
        "bucket/orders.csv",
        f"{prefix}not-a-run-0123abcd.tmp",  # no run id: no run the API could say is over
        temporary_path("bucket/other.csv", "1b3c5f0e-6d3b-4a57-9a51-0d3f1c7e2a10"),
    ]
    assert removable_paths([own, *others], prefix, RUN) == {own}
