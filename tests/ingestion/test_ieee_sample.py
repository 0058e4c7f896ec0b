"""The real IEEE-CIS sample through ``mappings/ieee_cis.yaml``: input ringwatch was not built
around (missing cells, a second file to join, no user id, no timestamp column)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from graph.types import LabelEntity, Verdict
from ingestion.loader import load_events
from ingestion.mapping import ColumnMapping
from tests.conftest import skip_outside_ci
from tests.ingestion.fakes import FakeGraphStore

REPO = Path(__file__).resolve().parents[2]
DATASET = REPO.parent / "shared" / "datasets" / "ieee_cis_sample"
TRANSACTIONS = DATASET / "train_transaction_5000.csv"
MAPPING = REPO / "mappings" / "ieee_cis.yaml"


@pytest.fixture(scope="module")
def transactions() -> Path:
    if not TRANSACTIONS.is_file():
        skip_outside_ci(f"IEEE-CIS sample not found at {DATASET}")
    return TRANSACTIONS


def test_ieee_sample_loads_through_the_mapping(transactions: Path, tmp_path: Path) -> None:
    mapping = ColumnMapping.from_file(MAPPING)
    store = FakeGraphStore()
    summary = load_events(transactions, store, mapping=mapping, quarantine_dir=tmp_path / "q")

    assert summary.read == 5000
    assert summary.loaded + summary.quarantined + summary.duplicates == 5000
    assert summary.loaded == len(store.events) > 4000
    text = summary.render()
    assert "read 5,000" in text and "train_transaction_5000.csv" in text

    events = list(store.events.values())
    first = store.events["ieee:2987000"]
    assert first.user_id == "card:13926|discover|315.0"
    assert first.merchant_id == "product:W" and first.amount == 68.5
    # Time order follows TransactionID.
    assert store.events["ieee:2987001"].ts - first.ts == 1.0

    # The identity join gives devices to some transactions, and devices are shared.
    per_device = Counter(e.device_id for e in events if e.device_id is not None)
    assert 500 < sum(per_device.values()) < 1000  # 962 transactions have an identity row
    assert max(per_device.values()) > 1
    assert store.events["ieee:2987004"].device_id == "device:SAMSUNG SM-G892A Build/NRD90M"
    # Cards repeat: several transactions per account.
    assert len({e.user_id for e in events}) < len(events)

    # isFraud becomes transaction and card verdicts (109 fraud rows in the sample).
    verdicts = Counter((lab.entity, lab.label) for lab in store.labels.values())
    fraud_txns = verdicts[(LabelEntity.TRANSACTION, Verdict.FRAUD)]
    assert 100 <= fraud_txns <= 109  # 109 in the whole sample
    assert fraud_txns + verdicts[(LabelEntity.TRANSACTION, Verdict.LEGIT)] == summary.loaded
    fraud_cards = verdicts[(LabelEntity.USER, Verdict.FRAUD)]
    assert 0 < fraud_cards <= fraud_txns
    assert fraud_cards + verdicts[(LabelEntity.USER, Verdict.LEGIT)] == len({e.user_id for e in events})

    again = load_events(transactions, store, mapping=mapping, quarantine_dir=tmp_path / "q")
    assert again.loaded == 0 and again.duplicates == summary.loaded
