"""Dependencies point one way (DESIGN §2): every import in the packages, module level or inside a
function, and every code cell of the notebooks, is read and checked against the allowed layers;
inside ``gnn/`` the same holds between its sub-packages."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Our top-level packages and the ones each may import (itself always).
ALLOWED: dict[str, frozenset[str]] = {
    "graph": frozenset(),
    "synthetic": frozenset({"graph"}),
    "ingestion": frozenset({"graph"}),
    # gnn.evaluation measures scores and rings against planted truth (PlantedTruth, ring recovery).
    "gnn": frozenset({"graph", "synthetic"}),
    "api": frozenset({"graph", "gnn", "ingestion"}),
    "ringwatch": frozenset({"graph", "synthetic", "gnn", "ingestion", "api"}),
}
#: Analysts' notebooks work from the command line's package and below, not from the service.
NOTEBOOK_ALLOWED = frozenset({"graph", "synthetic", "gnn", "ingestion", "ringwatch"})
#: gnn's sub-packages, lowest first: each imports only those before it (DESIGN §2).
GNN_ORDER = ("core", "artefact", "serving", "training", "evaluation")


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, dotted name) of every absolute import in ``tree``; ``from a import b`` counts as
    ``a.b`` (``b`` may be a module)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def imported_packages(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, top-level name) of every absolute import in ``tree``."""
    return list(dict.fromkeys((line, name.split(".")[0]) for line, name in imported_modules(tree)))


def wrong_way(package: str, tree: ast.AST, allowed: frozenset[str]) -> list[str]:
    ours = set(ALLOWED)
    return [f"line {line}: imports {name}" for line, name in imported_packages(tree) if name in ours and name != package and name not in allowed]


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_the_layers_below_it(package: str) -> None:
    problems = []
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        problems += [f"{path.relative_to(ROOT)} {p}" for p in wrong_way(package, tree, ALLOWED[package])]
    assert not problems, "wrong-way imports:\n" + "\n".join(problems)


def test_notebooks_do_not_import_the_service() -> None:
    problems = []
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks
    for path in notebooks:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        for i, cell in enumerate(c for c in cells if c["cell_type"] == "code"):
            source = "".join(cell["source"])
            tree = ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))))
            problems += [f"{path.name} cell {i} {p}" for p in wrong_way("notebook", tree, NOTEBOOK_ALLOWED)]
    assert not problems, "wrong-way imports:\n" + "\n".join(problems)


def test_the_checker_sees_an_import_inside_a_function() -> None:
    tree = ast.parse("def f():\n    from ringwatch.settings import Settings\n")
    assert wrong_way("api", tree, ALLOWED["api"]) == ["line 2: imports ringwatch"]


def gnn_wrong_way(sub: str, tree: ast.AST) -> list[str]:
    """Imports in gnn's sub-package ``sub`` of a sub-package at or after it in ``GNN_ORDER``."""
    rank = GNN_ORDER.index(sub)
    problems = []
    for line, name in imported_modules(tree):
        parts = name.split(".")
        if parts[0] == "gnn" and len(parts) > 1 and parts[1] in GNN_ORDER and GNN_ORDER.index(parts[1]) > rank:
            problems.append(f"line {line}: imports {name}")
    return problems


@pytest.mark.parametrize("sub", GNN_ORDER)
def test_a_gnn_sub_package_imports_only_the_ones_before_it(sub: str) -> None:
    assert {p.name for p in (ROOT / "gnn").iterdir() if (p / "__init__.py").is_file()} == set(GNN_ORDER)
    problems = []
    for path in sorted((ROOT / "gnn" / sub).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        problems += [f"{path.relative_to(ROOT)} {p}" for p in gnn_wrong_way(sub, tree)]
    assert not problems, "wrong-way imports:\n" + "\n".join(problems)


def test_the_gnn_checker_sees_a_wrong_way_import() -> None:
    tree = ast.parse("from gnn.core.model import RingSAGE\n\ndef f():\n    from gnn.training.calibrate import calibrate\n")
    assert gnn_wrong_way("serving", tree) == ["line 4: imports gnn.training.calibrate.calibrate"]
    assert gnn_wrong_way("evaluation", tree) == []
    assert gnn_wrong_way("core", ast.parse("import gnn\nfrom gnn import artefact\n")) == ["line 2: imports gnn.artefact"]


def test_every_package_folder_is_installed() -> None:
    """pyproject's explicit package list names every folder that holds an ``__init__.py``, so a
    built wheel (not only the editable install) carries all of them."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"])
    found = {str(p.parent.relative_to(ROOT)).replace("/", ".") for top in ALLOWED for p in (ROOT / top).rglob("__init__.py")}
    assert found - listed == set(), f"not in pyproject's packages: {sorted(found - listed)}"
