"""``synthetic.truth``: the planted truth aligned with a snapshot."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graph.types import NodeType
from synthetic.truth import PlantedTruth
from tests.gnn.synth import SynthData, generate


@pytest.fixture(scope="module")
def synth() -> SynthData:
    return generate()


def test_planted_truth_aligns_with_the_snapshot(synth: SynthData) -> None:
    users = synth.snapshot.nodes[NodeType.USER]
    frame = pd.DataFrame(
        {"user_id": users[::-1], "is_fraud": synth.user_is_fraud[::-1].astype(int), "ring_id": synth.user_ring[::-1], "ring_kind": ""}
    )
    txns = pd.DataFrame({"txn_id": synth.snapshot.transactions.txn_id, "is_fraud": synth.txn_is_fraud.astype(int)})
    truth = PlantedTruth.from_frames(synth.snapshot, frame, txns)
    assert np.array_equal(truth.user_is_fraud, synth.user_is_fraud)
    assert not truth.user_graph_only.any()  # no graph_only column: nobody marked
