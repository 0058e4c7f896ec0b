"""Promotion: a new model becomes current only if it is not worse than the current one on the
same held-out data; otherwise it is saved, kept back, and training says why (``--force`` overrides).

The models are real: one trained on the planted labels, one trained on shuffled labels (a
deliberately worse model). The pipeline tests replace the store and the (slow) training with
those ready-made models, so they check the wiring: CURRENT, the saved files, the metadata, the CLI.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from gnn.artefact.model_artefact import CURRENT, ModelArtefact, metadata_file_name, model_file_name
from gnn.training import selection
from gnn.training.promotion import TOLERANCE, decide
from gnn.training.train import TrainConfig, train
from graph.types import LabelTable, NodeType, Snapshot
from ringwatch import pipeline
from ringwatch.cli import main as cli_main
from ringwatch.settings import Settings
from tests.gnn.synth import SynthData, generate

CONFIG = TrainConfig(device="cpu")


@pytest.fixture(scope="module")
def synth() -> SynthData:
    return generate()


@pytest.fixture(scope="module")
def good(synth: SynthData) -> ModelArtefact:
    return train(synth.snapshot, CONFIG)


def _shuffled(table: LabelTable, n: int, rng: np.random.Generator) -> LabelTable:
    return dataclasses.replace(table, index=np.sort(rng.choice(n, size=len(table), replace=False)).astype(np.int64))


@pytest.fixture(scope="module")
def worse(synth: SynthData) -> ModelArtefact:
    """Trained on labels moved to random accounts and transactions: no signal left."""
    snap = synth.snapshot
    rng = np.random.default_rng(5)
    noisy = dataclasses.replace(
        snap,
        user_labels=_shuffled(snap.user_labels, snap.num_nodes(NodeType.USER), rng),
        txn_labels=_shuffled(snap.txn_labels, len(snap.transactions), rng),
    )
    return train(noisy, dataclasses.replace(CONFIG, epochs=5))


# -- the decision -------------------------------------------------------------------------------


def test_the_first_model_is_always_promoted(worse: ModelArtefact, synth: SynthData) -> None:
    p = decide(worse, None, synth.snapshot, CONFIG)
    assert p.promoted and not p.forced and p.against is None
    assert "first model" in p.reason
    assert math.isfinite(p.new_accounts_test_auprc) and math.isnan(p.current_accounts_test_auprc)


def test_a_worse_model_is_kept_back_and_the_reason_gives_both_numbers(
    good: ModelArtefact, worse: ModelArtefact, synth: SynthData
) -> None:
    p = decide(worse, good, synth.snapshot, CONFIG)
    assert not p.promoted and not p.forced and p.against == good.version
    # On this small world even noise-trained accounts rank perfectly; its transactions do not.
    assert p.new_transactions_test_auprc < p.current_transactions_test_auprc - TOLERANCE
    assert "kept back" in p.reason and good.version in p.reason and "transactions lower" in p.reason
    for entity in ("accounts", "transactions"):
        new, cur = getattr(p, f"new_{entity}_test_auprc"), getattr(p, f"current_{entity}_test_auprc")
        assert f"{entity} AUPRC {new:.3f} vs {cur:.3f}" in p.reason
    # The numbers are the models' real held-out AUPRCs on this snapshot.
    assert good.metrics.transactions_test is not None
    assert p.current_transactions_test_auprc == pytest.approx(good.metrics.transactions_test.auprc)


def test_a_better_or_equal_model_is_promoted(good: ModelArtefact, worse: ModelArtefact, synth: SynthData) -> None:
    better = decide(good, worse, synth.snapshot, CONFIG)
    assert better.promoted and not better.forced and "not worse" in better.reason
    same = decide(good, good, synth.snapshot, CONFIG)
    assert same.promoted and same.new_accounts_test_auprc == same.current_accounts_test_auprc
    # Within the tolerance counts as not worse.
    assert decide(worse, good, synth.snapshot, CONFIG, tolerance=1.0).promoted


def test_force_promotes_anyway_and_says_so(good: ModelArtefact, worse: ModelArtefact, synth: SynthData) -> None:
    p = decide(worse, good, synth.snapshot, CONFIG, force=True)
    assert p.promoted and p.forced and p.reason.startswith("promoted by --force although kept back")


def test_a_current_model_that_cannot_score_the_graph_is_replaced(good: ModelArtefact, synth: SynthData) -> None:
    foreign = dataclasses.replace(good, feature_names={**good.feature_names, "user": ("something_else",)})
    p = decide(good, foreign, synth.snapshot, CONFIG)
    assert p.promoted and "cannot score this graph" in p.reason


def test_nothing_to_compare_without_held_out_fraud(good: ModelArtefact, worse: ModelArtefact, synth: SynthData) -> None:
    snap = synth.snapshot
    empty = LabelTable(np.zeros(0, np.int64), np.zeros(0, bool), np.zeros(0), np.zeros(0, dtype=object))
    unlabelled = dataclasses.replace(snap, user_labels=empty, txn_labels=empty)
    p = decide(worse, good, unlabelled, CONFIG)
    assert p.promoted and "nothing to compare" in p.reason


# -- the pipeline and the CLI ------------------------------------------------------------------


class _Store:
    """Just enough of a GraphStore for ``step_train``: a snapshot."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def snapshot(self) -> Snapshot:
        return self._snapshot


@pytest.fixture
def trainer(
    tmp_path: Path, synth: SynthData, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Settings, list[ModelArtefact]]]:
    """Settings on a fresh home; ``step_train`` trains the next artefact queued in the list."""
    queue: list[ModelArtefact] = []

    @contextmanager
    def store_for(_: Settings) -> Iterator[_Store]:
        yield _Store(synth.snapshot)

    def train_and_select(
        snapshot: Snapshot, config: TrainConfig, *, progress: bool = False, candidates: Sequence[str] = ()
    ) -> ModelArtefact:
        assert snapshot is synth.snapshot
        return queue.pop(0)

    monkeypatch.setattr(pipeline, "store_for", store_for)
    monkeypatch.setattr(selection, "train_and_select", train_and_select)  # step_train imports it when called
    yield Settings.load(tmp_path / "home"), queue


def _current(settings: Settings) -> str:
    return (settings.models_dir / CURRENT).read_text().strip()


def test_step_train_keeps_a_worse_model_back_and_records_why(
    trainer: tuple[Settings, list[ModelArtefact]], good: ModelArtefact, worse: ModelArtefact
) -> None:
    settings, queue = trainer
    queue += [good, worse]
    first = pipeline.step_train(settings, CONFIG)
    assert first.promoted and _current(settings) == model_file_name(good.version)

    second = pipeline.step_train(settings, CONFIG)
    assert not second.promoted
    assert _current(settings) == model_file_name(good.version)  # still the good one
    assert second.path.is_file()  # saved for inspection, not used
    meta = json.loads((settings.models_dir / metadata_file_name(worse.version)).read_text())
    assert meta["promotion"]["promoted"] is False and "kept back" in meta["promotion"]["reason"]
    assert meta["promotion"]["against"] == good.version
    assert meta["promotion"]["current_accounts_test_auprc"] == pytest.approx(second.promotion.current_accounts_test_auprc)
    assert ModelArtefact.load(settings.models_dir, worse.version).promotion == second.promotion
    assert ModelArtefact.load(settings.models_dir).version == good.version


def test_cli_reports_the_kept_back_model_and_force_promotes_it(
    trainer: tuple[Settings, list[ModelArtefact]],
    good: ModelArtefact,
    worse: ModelArtefact,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings, queue = trainer
    queue += [good, worse, worse]
    argv = ["--home", str(settings.home), "--no-progress", "train"]
    assert cli_main(argv) == 0
    assert cli_main(argv) == 0
    out = capsys.readouterr().out
    assert "NOT promoted (kept back)" in out and "(saved, not current)" in out
    assert _current(settings) == model_file_name(good.version)

    assert cli_main([*argv, "--force"]) == 0
    assert "promoted by --force" in capsys.readouterr().out
    assert _current(settings) == model_file_name(worse.version)
    assert ModelArtefact.load(settings.models_dir).promotion.forced  # type: ignore[union-attr]
