"""docs/reliability.md and the suite cannot drift apart: every test the fault matrix names
exists, and every test written for a defect of a probe ("Issue 17:" or "Issue 24:" in its
docstring) is named in the matrix."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]
MATRIX = REPO / "docs" / "reliability.md"
PROBE_ISSUES = ("Issue 17:", "Issue 24:")
NAMED = re.compile(r"`(tests/[\w/]+\.py)::([\w:]+)`")


def _tests_in(path: Path) -> dict[str, str]:
    """`name` or `Class::name` of each test function in a file, with its docstring."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: dict[str, str] = {}
    for node in tree.body:
        scopes: list[tuple[str, ast.AST]] = [("", node)]
        if isinstance(node, ast.ClassDef):
            scopes = [(f"{node.name}::", child) for child in node.body]
        for prefix, item in scopes:
            if isinstance(item, ast.FunctionDef) and item.name.startswith("test_"):
                found[prefix + item.name] = ast.get_docstring(item) or ""
    return found


def test_every_named_test_exists() -> None:
    named = NAMED.findall(MATRIX.read_text(encoding="utf-8"))
    assert named
    missing = [
        f"{path}::{name}"
        for path, name in named
        if not (REPO / path).is_file() or name not in _tests_in(REPO / path)
    ]
    assert missing == []


def test_every_probe_defect_test_is_in_the_matrix() -> None:
    named = {f"{path}::{name}" for path, name in NAMED.findall(MATRIX.read_text("utf-8"))}
    written = {
        f"{path.relative_to(REPO)}::{name}"
        for path in (REPO / "tests").rglob("test_*.py")
        for name, doc in _tests_in(path).items()
        if doc.startswith(PROBE_ISSUES)
    }
    assert written and written - named == set()
