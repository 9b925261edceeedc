"""The schema contract (`on_schema_change`): what differs between the columns an export's last
successful run wrote and those this run would write, each a name and its type as the source
names it (compared as text).

Four kinds of change, each of which a partner's loader may trip on: a column `added`, one
`removed`, one `retyped`, and one `moved` (kept, but at another place among the columns both
runs have: a CSV's columns are read by position). A column added or removed moves no other.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass

# A column as a run writes it: its name and its source type.
Column = tuple[str, str]


@dataclass(frozen=True)
class SchemaChanges:
    """What differs, each list in this run's column order (`removed`: the recorded order)."""

    added: tuple[Column, ...] = ()
    removed: tuple[str, ...] = ()
    retyped: tuple[tuple[str, str, str], ...] = ()  # name, recorded type, this run's type
    moved: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.retyped or self.moved)

    def parts(self) -> tuple[str, ...]:
        """Each kind that changed, as a user reads it: `added: note (text), size (int)`."""
        found = []
        if self.added:
            found.append("added: " + ", ".join(_named(name, kind) for name, kind in self.added))
        if self.removed:
            found.append("removed: " + ", ".join(self.removed))
        if self.retyped:
            found.append(
                "retyped: " + ", ".join(f"{name} {old} -> {new}" for name, old, new in self.retyped)
            )
        if self.moved:
            found.append("moved: " + ", ".join(self.moved))
        return tuple(found)

    def describe(self) -> str:
        """`added: note (text); removed: qty; retyped: amount numeric(12,2) -> numeric(14,2)`."""
        return "; ".join(self.parts())


def _named(name: str, kind: str) -> str:
    """`note (text)`; `note` alone where the source names no type (a SQLite query's)."""
    return f"{name} ({kind})" if kind else name


def schema_changes(recorded: Sequence[Column], current: Sequence[Column]) -> SchemaChanges:
    """What changed from the `recorded` columns to the `current` ones."""
    before = dict(recorded)
    after = dict(current)
    kept = [name for name, _ in current if name in before]
    return SchemaChanges(
        added=tuple((name, kind) for name, kind in current if name not in before),
        removed=tuple(name for name, _ in recorded if name not in after),
        retyped=tuple(
            (name, before[name], kind) for name, kind in current if before.get(name, kind) != kind
        ),
        moved=_moved(kept, [name for name, _ in recorded if name in after]),
    )


def _moved(current: list[str], recorded: list[str]) -> tuple[str, ...]:
    """The fewest columns whose moving explains the new order: those outside the longest run
    of columns still in their recorded order (a longest increasing subsequence of their
    recorded places, O(n log n) however wide the table)."""
    place = {name: index for index, name in enumerate(recorded)}
    positions = [place[name] for name in current]
    tails: list[int] = []  # the smallest last place of a run of each length
    tail_at: list[int] = []  # that run's last index in `current`
    previous = [-1] * len(positions)
    for index, position in enumerate(positions):
        length = bisect_left(tails, position)
        if length == len(tails):
            tails.append(position)
            tail_at.append(index)
        else:
            tails[length] = position
            tail_at[length] = index
        previous[index] = tail_at[length - 1] if length else -1
    in_order: set[int] = set()
    index = tail_at[-1] if tail_at else -1
    while index >= 0:
        in_order.add(index)
        index = previous[index]
    return tuple(name for index, name in enumerate(current) if index not in in_order)
