"""Start served flow runs in processes forked from one that has already imported Prefect and
the flows, instead of new interpreters that import them again.

Prefect's runner starts each run of a served flow with `multiprocessing`'s spawn context: a new
Python process that imports Prefect, pandas and the flow before the flow's body can begin,
about 2.4 s on a 2-core machine, most of an API trigger's latency. `enable()` gives the runner
a forkserver context instead (Python's own: a single-threaded server process that imports the
listed modules once and forks a child per run). The child runs exactly what the spawned process
would have run, Prefect's own bootstrap and engine, unpickled from the same bytes; only the
imports are already done. The forkserver is started at once, so the first run is fast too.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import sys
from collections.abc import Iterable

from flows.core.prefect_compat import engine_spawns_runs, spawn_runs_with

WARM_MODULES = ("prefect.flow_engine", "prefect.blocks.system")


def enable(flow_modules: Iterable[str]) -> bool:
    """Run this process's served flows in forks of a server that imported `flow_modules`
    (the flows' modules, and what this program's main script imports).

    Returns False, changing nothing, where there is no forkserver (Windows) or Prefect's
    engine no longer starts runs through `multiprocessing.get_context("spawn")`.
    """
    if sys.platform == "win32" or "forkserver" not in multiprocessing.get_all_start_methods():
        return False
    if not engine_spawns_runs():
        return False
    context = multiprocessing.get_context("forkserver")
    # Each child runs this program's main module again (as `__mp_main__`, as a spawned one
    # would); with its imports preloaded that costs next to nothing.
    main_module = getattr(getattr(sys.modules["__main__"], "__spec__", None), "name", None)
    preload = [*WARM_MODULES, *flow_modules, *([main_module] if main_module else [])]
    context.set_forkserver_preload(preload)
    multiprocessing.forkserver.ensure_running()
    spawn_runs_with(context)
    return True
