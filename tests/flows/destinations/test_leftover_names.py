"""Which temporary names a write may throw away (flows/destinations/store.py): names in its
target's folder only; of its own run, only its target's (its other names are writes in
progress); of another run, only when the Prefect API says that run is over (these cases never
ask the API: there is no other run's name, or none it could know)."""

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
OTHER_RUN = "1b3c5f0e-6d3b-4a57-9a51-0d3f1c7e2a10"


def test_a_temporary_name_names_its_run() -> None:
    prefix = leftover_prefix("bucket/daily/orders.csv")
    assert prefix == "bucket/daily/."
    assert temporary_writer(temporary_path("bucket/daily/orders.csv", RUN), prefix) == RUN
    assert temporary_writer(temporary_path("bucket/daily/other.csv.gz", RUN), prefix) == RUN
    # A final file, a name with no run id, a name in a sub-folder: no run's.
    assert temporary_writer("bucket/daily/orders.csv", prefix) is None
    assert temporary_writer("bucket/daily/.orders.csv.not-a-run-0123abcd.tmp", prefix) is None
    assert temporary_writer(f"bucket/daily/x/.orders.csv.{RUN}-0123abcd.tmp", prefix) is None
    assert leftover_prefix("orders.csv") == "."  # a local file in the working folder
    assert temporary_writer(temporary_path("orders.csv", RUN), ".") == RUN


def test_a_run_throws_away_its_own_names_of_its_target_and_keeps_the_rest() -> None:
    own = temporary_path("bucket/orders.csv", RUN)
    others = [
        "bucket/orders.csv",
        "bucket/.orders.csv.not-a-run-0123abcd.tmp",  # no run the API could say is over
        temporary_path("bucket/orders-0002.csv", RUN),  # the same run's next part, in progress
        temporary_path("bucket/other.csv", OTHER_RUN),  # no API here: not known to be over
        temporary_path("bucket/sub/orders.csv", RUN),  # another folder
    ]
    assert removable_paths([own, *others], "bucket/orders.csv", RUN) == {own}
