"""How a column's name becomes an Avro field name: Avro names are `[A-Za-z_][A-Za-z0-9_]*`, so
every other character becomes `_` and a leading digit gets a `_` before it (`order id` →
`order_id`, `1st` → `_1st`, `Größe` → `Gr__e`). Two columns written alike are refused before
the run (flows/formats/output_names.py). No pyarrow here: parameter checks use it."""

from __future__ import annotations

import re

_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_]")


def avro_name(column: str) -> str:
    """The Avro field name of a column."""
    name = _NOT_IN_NAME.sub("_", column)
    return f"_{name}" if not name or name[0].isdigit() else name
