from __future__ import annotations

import numpy as np
import pytest

from gnn.core.thresholds import Thresholds, assign_tiers
from graph.errors import ValidationError
from graph.types import Tier


def test_assign_tiers() -> None:
    th = Thresholds(medium=0.5, high=0.8)
    assert assign_tiers(np.array([0.1, 0.5, 0.79, 0.8, 1.0]), th) == [
        Tier.LOW, Tier.MEDIUM, Tier.MEDIUM, Tier.HIGH, Tier.HIGH,
    ]  # fmt: skip


def test_threshold_validation_names_field() -> None:
    with pytest.raises(ValidationError, match="medium"):
        Thresholds(medium=0.9, high=0.5)
    with pytest.raises(ValidationError, match="high"):
        Thresholds(medium=0.1, high=1.5)
