"""The notebooks' data: the graph the store holds, or a synthetic dataset generated and loaded into it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from graph.types import NodeType, StoreStats
from ingestion.loader import LabelLoadSummary, LoadSummary
from synthetic.generator import GeneratedDataset
from ringwatch.settings import Settings

__all__ = ["DataSource", "load_or_generate"]


@dataclass(frozen=True, slots=True)
class DataSource:
    """What ``load_or_generate`` did. ``generated`` False: the store already held accounts and
    was used as it is (``dataset``, ``ingest``, ``labels`` are then None). ``truth_dir`` is the
    folder with the planted truth (``truth_users.csv`` ...) when there is one."""

    generated: bool
    stats: StoreStats
    dataset: GeneratedDataset | None
    ingest: LoadSummary | None
    labels: LabelLoadSummary | None
    truth_dir: Path | None


def load_or_generate(settings: Settings, users: int, seed: int) -> DataSource:
    """Use the graph the configured store holds; when it holds no account, generate a synthetic
    dataset of ``users`` accounts (``seed``) into ``HOME/data`` and load its events and labels,
    exactly as ``ringwatch demo`` does (``ringwatch.pipeline`` steps)."""
    from ringwatch import pipeline

    with pipeline.store_for(settings) as store:
        stats = store.stats()
    truth = settings.data_dir if (settings.data_dir / "truth_users.csv").is_file() else None
    if stats.nodes.get(NodeType.USER.value, 0) > 0:
        return DataSource(False, stats, None, None, None, truth)
    dataset = pipeline.step_generate(settings, users, seed)
    ingest = pipeline.step_ingest(settings, [dataset.events])
    labels = pipeline.step_label(settings, dataset.labels)
    with pipeline.store_for(settings) as store:
        stats = store.stats()
    return DataSource(True, stats, dataset, ingest, labels, settings.data_dir)
