"""``ringwatch.analysis.data``: the store's graph is reused when it holds accounts."""

from __future__ import annotations

from graph.types import NodeType
from ringwatch.analysis.data import load_or_generate
from tests.ringwatch.analysis.world import World


def test_load_or_generate_reuses_a_store_that_holds_accounts(world: World) -> None:
    again = load_or_generate(world.settings, users=50, seed=1)
    assert not again.generated and again.dataset is None
    assert again.stats.nodes["User"] == world.snapshot.num_nodes(NodeType.USER)
    assert again.truth_dir == world.settings.data_dir
