"""``gnn.serving.reasons``: a shared device or IP reads the same wherever it is stated."""

from __future__ import annotations

from gnn.serving.reasons import account_shares, identifier_shared
from graph.types import NodeType


def test_identifier_shared_counts_the_high_tier_beyond_the_confirmed_fraud() -> None:
    assert identifier_shared(NodeType.DEVICE, "d1", 3, fraud=1, high=2) == "device d1 is shared with 3 other accounts: 1 confirmed fraud, 2 more high risk"
    assert identifier_shared(NodeType.IP, "10.0.0.1", 2, fraud=0, high=2) == "IP 10.0.0.1 is shared with 2 other accounts: 2 high risk"
    assert identifier_shared(NodeType.IP, "10.0.0.1", 1, fraud=0, high=0) == "IP 10.0.0.1 is shared with 1 other account"


def test_account_shares_names_the_overlapping_counts() -> None:
    text = account_shares(NodeType.DEVICE, "d01", 4, high=4, fraud=1)
    assert text == "shares device d01 with 4 other accounts, 4 of them high risk, 1 confirmed fraud"
    assert account_shares(NodeType.IP, "10.0.0.9", 1, high=0, fraud=0) == "shares IP 10.0.0.9 with 1 other account"
