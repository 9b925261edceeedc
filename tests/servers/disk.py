"""A small filesystem whose disk really fills up."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def small_filesystem(folder: Path, size_bytes: int) -> Iterator[bool]:
    """Mount a tmpfs of `size_bytes` on `folder` (created), for a disk that really fills up;
    yields False, mounting nothing, where mounting is not allowed (not root)."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = (
        os.geteuid() == 0
        and shutil.which("mount") is not None
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_bytes},mode=0755", "tmpfs", str(folder)],
            capture_output=True, check=False, timeout=30,
        ).returncode == 0
    )  # fmt: skip
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)
