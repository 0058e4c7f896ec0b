from __future__ import annotations

import os

import pytest
import torch

from gnn.core.device import ENV_VAR, THREADS_ENV_VAR, pick_device, pick_threads, torch_threads
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


def test_threads_come_from_the_argument_then_the_env_then_the_cores_we_may_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(THREADS_ENV_VAR, raising=False)
    assert pick_threads() == len(os.sched_getaffinity(0))
    monkeypatch.setenv(THREADS_ENV_VAR, "3")
    assert pick_threads() == 3
    assert pick_threads(1) == 1
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv(THREADS_ENV_VAR, bad)
        with pytest.raises(ConfigError, match=f"RINGWATCH_THREADS='{bad}'"):
            pick_threads()


def test_training_threads_are_set_for_the_block_and_put_back() -> None:
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
