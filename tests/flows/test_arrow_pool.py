"""Arrow's allocator in an export process (flows/__init__.py): jemalloc on Linux, which
returns freed memory where the wheels' mimalloc keeps it (docs/benchmarks.md, "Memory")."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

PRINT_POOL = "import flows.export, pyarrow; print(pyarrow.default_memory_pool().backend_name)"


def _pool(env: dict[str, str]) -> str:
    clean = {key: value for key, value in os.environ.items() if key != "ARROW_DEFAULT_MEMORY_POOL"}
    done = subprocess.run(
        [sys.executable, "-c", PRINT_POOL],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return done.stdout.strip()


@pytest.mark.skipif(sys.platform != "linux", reason="jemalloc is chosen on Linux only")
def test_an_export_process_allocates_arrow_memory_with_jemalloc() -> None:
    assert _pool({}) == "jemalloc"


def test_the_users_choice_of_pool_is_kept() -> None:
    assert _pool({"ARROW_DEFAULT_MEMORY_POOL": "system"}) == "system"
