"""The analysts' notebooks (``notebooks/*.ipynb``): committed clean, and every one runs top to bottom.

Each notebook runs in a fresh kernel of this interpreter (ipykernel's ``python3`` spec, which
jupyter_client starts with ``sys.executable``: the project's venv) with ``RINGWATCH_HOME`` set to
a new temporary folder, so a run starts from an empty store and never touches the repository's
``ringwatch-data``. A cell that raises fails the test. ``NEO4J_URI`` is removed for these runs (the
embedded store); ``test_investigate_a_ring_on_neo4j`` runs notebook 3 against the test Neo4j.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import Neo4jServer, skip_outside_ci

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
EXPECTED = (
    "01_explore_graph.ipynb",
    "02_train_and_evaluate.ipynb",
    "03_investigate_a_ring.ipynb",
    "04_bring_your_own_data.ipynb",
)
#: Seconds one cell may take before the run fails. Each notebook takes well under a minute on an
#: idle 2-core machine; the margin is for shared, overloaded ones (a stuck cell still fails).
CELL_TIMEOUT = 900
#: Figures each notebook must write under HOME/reports/notebooks (relative paths).
FIGURES = {
    "01_explore_graph.ipynb": ("01_degree_distributions.png", "01_activity_over_time.png"),
    "02_train_and_evaluate.ipynb": (
        "02_threshold_tradeoff.png",
        "evaluation/pr_curves.png",
        "evaluation/score_distributions.png",
    ),
    "03_investigate_a_ring.ipynb": ("03_ring_subgraph.png", "03_ring_timeline.png"),
    "04_bring_your_own_data.ipynb": ("04_ieee_degree_distributions.png",),
}
_STORE_ENV = ("NEO4J_URI", "NEO4J_USER", "NEO4J_PASSWORD")


def _execute(notebook: nbformat.NotebookNode, home: Path) -> nbformat.NotebookNode:
    """Run ``notebook`` from the notebooks folder with ``RINGWATCH_HOME=home``; raises on a failing cell."""
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    saved = {k: os.environ.get(k) for k in ("RINGWATCH_HOME", "MPLBACKEND")}
    os.environ["RINGWATCH_HOME"] = str(home)
    os.environ["MPLBACKEND"] = "Agg"
    try:
        return client.execute()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _output_text(notebook: nbformat.NotebookNode) -> str:
    parts = []
    for cell in notebook.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            for mime in ("text/plain", "text/markdown"):  # Markdown(...) shows as text/markdown
                parts.append(out.get("data", {}).get(mime, ""))
    return "\n".join(parts)


def test_the_four_notebooks_are_there() -> None:
    assert tuple(sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))) == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_is_committed_without_outputs(name: str) -> None:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(notebook)
    dirty = [
        i
        for i, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    assert not dirty, f"{name}: cells {dirty} have outputs or execution counts; clear them before committing"
    assert notebook.cells[0].cell_type == "markdown"


def test_kernel_is_this_interpreter(tmp_path: Path) -> None:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import sys, os; print(sys.executable); print(os.environ['RINGWATCH_HOME'])")])
    done = _execute(notebook, tmp_path)
    lines = done.cells[0].outputs[0]["text"].split()
    assert Path(lines[0]).absolute() == Path(sys.executable).absolute()
    assert lines[1] == str(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_runs_top_to_bottom(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in _STORE_ENV:
        monkeypatch.delenv(var, raising=False)
    if name.startswith("04") and not (REPO.parent / "shared" / "datasets" / "ieee_cis_sample").is_dir():
        skip_outside_ci("the IEEE-CIS sample is not in ../shared/datasets")
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    started = time.perf_counter()
    done = _execute(notebook, tmp_path)
    seconds = time.perf_counter() - started
    print(f"{name}: {seconds:.1f} s")
    executed = tmp_path / "executed" / name
    executed.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(done, executed)  # for a look after a failure elsewhere in the test

    home = tmp_path / "byod-ieee-cis" if name.startswith("04") else tmp_path
    figures = home / "reports" / "notebooks"
    for rel in FIGURES[name]:
        path = figures / rel
        assert path.is_file() and path.read_bytes()[:4] == b"\x89PNG", f"{name} did not write {path}"
    assert not (REPO / "notebooks" / "ringwatch-data").exists(), "a notebook wrote into the repository"
    text = _output_text(done)
    if name.startswith("03"):
        cases = list((home / "reports" / "cases").glob("*.members.csv"))
        assert len(cases) == 1
    if name.startswith("04"):
        assert "Too small to claim quality" in text or "too small" in text.lower()
        assert "missing_user_id" in text  # the strict mapping's quarantine reason is shown


@pytest.mark.slow
@pytest.mark.neo4j
def test_investigate_a_ring_on_neo4j(neo4j_server: Neo4jServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ringwatch import pipeline
    from ringwatch.settings import Settings

    settings = Settings(home=tmp_path, neo4j_uri=neo4j_server.uri, neo4j_user=neo4j_server.user, neo4j_password=neo4j_server.password)
    with pipeline.store_for(settings) as store:
        store.delete_all()  # type: ignore[attr-defined]
    monkeypatch.setenv("NEO4J_URI", neo4j_server.uri)
    monkeypatch.setenv("NEO4J_USER", neo4j_server.user)
    monkeypatch.setenv("NEO4J_PASSWORD", neo4j_server.password)
    done = _execute(nbformat.read(NOTEBOOKS / "03_investigate_a_ring.ipynb", as_version=4), tmp_path)
    text = _output_text(done)
    assert f"Neo4j at {neo4j_server.uri}" in text
    assert "Neo4j: ring ring-" in text  # the expand_ring query ran against the server
    assert not (tmp_path / "store.sqlite").exists()
