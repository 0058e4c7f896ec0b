"""``synthetic.hub_shaped``: every payment through the three hub merchants, most users labelled,
the same files for the same config."""

from __future__ import annotations

from pathlib import Path

import pytest

from graph.errors import ValidationError
from synthetic.hub_shaped import HUB_MERCHANTS, HubConfig, generate_hub

pytestmark = pytest.mark.slow


def test_every_payment_goes_through_three_merchants(tmp_path: Path) -> None:
    data = generate_hub(HubConfig(users=500, seed=1), tmp_path)
    merchants = {line.split(",")[5] for line in data.events.read_text().splitlines()[1:] if ",payment," in line}
    assert merchants == set(HUB_MERCHANTS)
    assert data.n_labels == 350  # 70 % of users
    assert generate_hub(HubConfig(users=500, seed=1), tmp_path / "again").events.read_bytes() == data.events.read_bytes()
    with pytest.raises(ValidationError, match="labelled_share"):
        generate_hub(HubConfig(users=500, labelled_share=1.5), tmp_path / "bad")
