"""The shape of the code (README, "Layout"): every import of a product module names one that
exists, no two product modules import each other (directly or round a loop), the gateway and
the command line start without the export engine (pyarrow, psycopg), and every contract the code
cites is written down in docs/design.md."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("flows", "blocks", "deployments", "demo")

pytestmark = pytest.mark.unit


def product_modules() -> dict[str, Path]:
    """Every module of the product packages, by dotted name."""
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            parts = path.relative_to(REPO_ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def imported_modules(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The product modules `name` imports anywhere in its file: at the top, in functions and
    under TYPE_CHECKING alike (a cycle hidden in a function is still a cycle)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in known else base)
    return {module for module in found if module.split(".")[0] in PACKAGES}


def import_graph() -> dict[str, set[str]]:
    known = product_modules()
    return {name: imported_modules(name, path, known) for name, path in known.items()}


def test_every_product_import_names_a_module() -> None:
    graph = import_graph()
    missing = sorted(
        f"{importer} imports {imported}"
        for importer, imported_set in graph.items()
        for imported in imported_set
        if imported not in graph
    )
    assert not missing, "\n".join(missing)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the modules round it (first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for imported in sorted(graph.get(module, ())):
            if imported == module:
                continue
            if state.get(imported) == 1:
                return [*path[path.index(imported) :], imported]
            if imported not in state and (cycle := visit(imported)) is not None:
                return cycle
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)) is not None:
            return cycle
    return None


def test_no_import_cycle_between_product_modules() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " → ".join(cycle or [])


def test_the_cycle_finder_finds_cycles() -> None:
    """The check above is not vacuous: a loop of three is found, a chain is not."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def package_of(module: str) -> str:
    """The unit the layer rule speaks of: a subpackage of `flows` or `deployments`
    (`flows.sources`), a top-level module of `flows` (`flows.export`), or a top package."""
    parts = module.split(".")
    if parts[0] in ("flows", "deployments") and len(parts) > 1:
        return ".".join(parts[:2])
    return parts[0]


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for importer, imported_set in import_graph().items():
        edges = graph.setdefault(package_of(importer), set())
        edges.update(package_of(imported) for imported in imported_set)
    return {package: edges - {package} for package, edges in graph.items()}


def test_no_import_cycle_between_packages() -> None:
    """Issue 25's seams: `flows.formats` and `flows.destinations` (or any two of the units
    above) never import each other round a loop, which the module-level check cannot see."""
    graph = package_graph()
    assert {"flows.core", "flows.sources", "flows.formats", "flows.destinations"} <= set(graph)
    cycle = find_cycle(graph)
    assert cycle is None, "package cycle: " + " → ".join(cycle or [])


def test_the_bottom_layer_imports_nothing_of_the_product_above_it() -> None:
    assert package_graph()["flows.core"] == set()


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_layer_contract_is_kept_and_refuses_a_back_import(tmp_path: Path) -> None:
    """pyproject.toml's import-linter contracts (`make lint` runs them) hold on the tree, and
    break on a copy where a format imports the delivery package: the contract is not vacuous."""
    kept = _lint_imports(REPO_ROOT)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert "Contracts: 2 kept, 0 broken." in kept.stdout
    for package in PACKAGES:
        shutil.copytree(
            REPO_ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("*.sqlite")
        )
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path)
    writer = tmp_path / "flows" / "formats" / "csv_writer.py"
    writer.write_text(writer.read_text() + "\nimport flows.destinations.registry  # noqa\n")
    broken = _lint_imports(tmp_path)
    assert broken.returncode != 0
    assert "BROKEN" in broken.stdout
    assert "flows.formats.csv_writer -> flows.destinations.registry" in broken.stdout


@pytest.mark.parametrize("module", ["deployments.gateway.app", "deployments.cli.app"])
def test_the_gateway_and_the_cli_start_without_the_export_engine(module: str) -> None:
    """`exports gateway` (and every command but run and demo) never reads or writes rows, so
    it must not pay for pyarrow and psycopg: checked in a fresh interpreter."""
    probe = (
        f"import sys, json, {module}, deployments.gateway; "
        "print(json.dumps([m for m in ('pyarrow', 'psycopg', 'flows.export') if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_every_contract_the_code_cites_has_a_heading_in_the_design() -> None:
    """`Contract N` in the code means docs/design.md's "Contract N — ..." heading."""
    headings = set(
        re.findall(r"^## (Contract \d+) — ", (REPO_ROOT / "docs" / "design.md").read_text(), re.M)
    )
    assert headings == {f"Contract {number}" for number in range(1, 7)}
    cited = {
        match
        for package in PACKAGES
        for path in (REPO_ROOT / package).rglob("*.py")
        for match in re.findall(r"Contract \d+", path.read_text())
    }
    assert cited and cited <= headings, sorted(cited - headings)
