from __future__ import annotations

import pytest
import torch

from gnn.device import ENV_VAR, pick_device
from graph.errors import ConfigError


def test_explicit_cpu_wins_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "cuda")
    assert pick_device("cpu") == torch.device("cpu")


def test_env_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "cpu")
    assert pick_device() == torch.device("cpu")


def test_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert pick_device().type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_unknown_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "tpu")
    with pytest.raises(ConfigError, match="RINGWATCH_DEVICE='tpu'"):
        pick_device()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA (CI has none, so it always runs there)")
def test_cuda_missing() -> None:
    with pytest.raises(ConfigError, match="CUDA is not available"):
        pick_device("cuda")
