"""Which task failures Prefect retries: only those that may pass on their own. Shared by the
flow's tasks (flows/tasks.py) and the delivery's (flows/destinations/delivery.py)."""

from __future__ import annotations

from typing import Any

from prefect.cache_policies import NO_CACHE

from flows.core.errors import is_transient


def _retry_transient(_task: Any, _task_run: Any, state: Any) -> bool:
    """Retry only failures that may pass on their own (lost connections, timeouts)."""
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001 - classifying the task's own failure
        return is_transient(exc)
    return False


# Tasks that talk to a database or a store: transient failures get two more attempts, and no
# result is cached (every run reads and writes afresh).
RETRY_TRANSIENT: dict[str, Any] = {
    "retries": 2,
    "retry_delay_seconds": [2, 10],
    "retry_condition_fn": _retry_transient,
    "cache_policy": NO_CACHE,
}
