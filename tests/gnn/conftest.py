"""Shared fixtures: one small planted world and one model trained on it (per test session)."""

from __future__ import annotations

import pytest

from gnn.artefact.model_artefact import ModelArtefact
from gnn.training.train import TrainConfig, train
from tests.gnn.synth import SynthData, generate

#: CPU, the defaults otherwise: the tests check the configuration users get.
CONFIG = TrainConfig(device="cpu")


@pytest.fixture(scope="session")
def synth() -> SynthData:
    return generate()


@pytest.fixture(scope="session")
def trained(synth: SynthData) -> ModelArtefact:
    return train(synth.snapshot, CONFIG)
