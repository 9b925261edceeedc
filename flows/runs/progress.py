"""The progress artifact of a write task: rows written of the rows counted, for the Prefect UI.

It is created once writing has lasted `PROGRESS_EVERY_S`, and updated at most that often;
a write that is done sooner creates it once, at 100 %. Creating it at 0 % on the start and
patching it at the end cost every short export two API round trips instead of one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from uuid import UUID

from prefect.artifacts import create_progress_artifact, update_progress_artifact

PROGRESS_EVERY_S = 1.0


@dataclass
class WriteProgress:
    description: str  # e.g. "orders: rows written of 1000"
    total: int | None  # the rows counted, when the source was counted
    _artifact: UUID | None = None
    _shown: float = field(default_factory=time.monotonic)

    def rows_written(self, rows: int) -> None:
        """Show the percentage, if a total is known and the last update is old enough."""
        if self.total and time.monotonic() - self._shown >= PROGRESS_EVERY_S:
            self._show(min(100.0, round(100.0 * rows / self.total, 1)))

    def finished(self) -> None:
        self._show(100.0)

    def _show(self, percent: float) -> None:
        if self._artifact is None:
            created = create_progress_artifact(progress=percent, description=self.description)
            assert isinstance(created, UUID)  # called from sync code, Prefect returns the id
            self._artifact = created
        else:
            update_progress_artifact(self._artifact, percent)
        self._shown = time.monotonic()
