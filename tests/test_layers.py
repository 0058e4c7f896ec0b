"""The packages depend one way (DESIGN §2): ``ingestion -> graph``, ``gnn -> graph``,
``api -> graph, gnn, ingestion``, the command line (``ringwatch``) on top of all; ``graph``
imports none of the others. Every import is checked, the ones inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("graph", "ingestion", "gnn", "api", "ringwatch")
ALLOWED = {
    "graph": {"graph"},
    "ingestion": {"ingestion", "graph"},
    "gnn": {"gnn", "graph"},
    "api": {"api", "graph", "gnn", "ingestion"},
    "ringwatch": set(PACKAGES),
}


def _imported_packages(path: Path) -> set[tuple[str, int]]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found.update((name.split(".")[0], node.lineno) for name in names if name.split(".")[0] in PACKAGES)
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_point_one_way(package: str) -> None:
    wrong = [
        f"{path.relative_to(REPO)}:{line} imports {imported}"
        for path in sorted((REPO / package).rglob("*.py"))
        for imported, line in sorted(_imported_packages(path))
        if imported not in ALLOWED[package]
    ]
    assert not wrong, "\n".join(wrong)
