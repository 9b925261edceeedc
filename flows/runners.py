"""Where the partitions of a split read run: Prefect's thread pool in the flow's process by
default, or a Dask cluster through prefect-dask's DaskTaskRunner (`runner: {dask: ...}`).

Threads give each partition its own database backend, so the server's share of the read runs
on several server cores; the client's share (one libpq call per COPY row under the GIL, then
pyarrow) stays within about one core of the flow's process (docs/benchmarks.md, "Partitions").
A Dask cluster spreads the partitions over worker processes and machines, adding client cores;
each worker writes its parts straight to the destination.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect.task_runners import ThreadPoolTaskRunner

from flows.core.config import RunnerConfig
from flows.core.errors import ConfigurationError


@contextmanager
def partition_runner(runner: RunnerConfig | None, partitions: int) -> Iterator[Any]:
    """A started Prefect task runner with room for `partitions` tasks at once."""
    if runner is None:
        threads: ThreadPoolTaskRunner[Any] = ThreadPoolTaskRunner(max_workers=partitions)
        with threads:
            yield threads
        return
    try:
        from prefect_dask.task_runners import DaskTaskRunner
    except ImportError:
        raise ConfigurationError(
            "runner.dask: prefect-dask is not installed here",
            field="runner.dask",
            hint="install the extra: pip install 'prefect-exports[dask]'",
        ) from None
    if runner.dask == "local":  # worker processes on this machine, one thread each
        workers = max(1, min(partitions, os.cpu_count() or 1))
        dask = DaskTaskRunner(
            cluster_kwargs={"n_workers": workers, "processes": True, "threads_per_worker": 1}
        )
    else:
        dask = DaskTaskRunner(address=runner.dask)
    with dask:
        yield dask
