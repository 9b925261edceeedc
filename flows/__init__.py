"""The export flows and the stages of their pipe: sources (read) → formats (write) →
destinations (deliver) → runs (record), with alerts on the way. Subpackages import nothing in
their `__init__`: each module is imported by its own name, so nothing loads a stage it does not
use.

The one thing done here, before any module of ours can load pyarrow: Arrow's allocator is
jemalloc on Linux unless the user chose one. The wheels' default (mimalloc) keeps freed
segments mapped, so XML and Parquet exports peaked 15-45 MB higher at the same speed
(docs/benchmarks.md, "Memory"). ARROW_DEFAULT_MEMORY_POOL is only read when pyarrow loads.
"""

import os as _os
import sys as _sys

if _sys.platform == "linux":
    _os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
