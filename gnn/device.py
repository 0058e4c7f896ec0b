"""Which torch device ringwatch computes on: CUDA when present, else the CPU.

``RINGWATCH_DEVICE=cpu|cuda`` overrides the automatic choice (e.g. to keep a GPU free, or to
check that CPU and GPU agree); an explicit argument overrides both.
"""

from __future__ import annotations

import os

import torch

from graph.errors import ConfigError

ENV_VAR = "RINGWATCH_DEVICE"


def pick_device(preferred: str | None = None) -> torch.device:
    """Resolve the compute device.

    Args:
        preferred: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; ``None`` reads ``RINGWATCH_DEVICE`` and
            falls back to CUDA if available, else CPU.
    Raises:
        ConfigError: an unknown device name, or CUDA asked for on a machine without it.
    """
    source = "device argument"
    choice = preferred
    if choice is None:
        choice = os.environ.get(ENV_VAR) or None
        source = ENV_VAR
    if choice is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = choice.strip().lower()
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(f"{source}={choice!r}: CUDA is not available on this machine; use 'cpu'")
        try:
            return torch.device(name)
        except RuntimeError as e:
            raise ConfigError(f"{source}={choice!r}: not a valid CUDA device name") from e
    raise ConfigError(f"{source}={choice!r}: must be 'cpu' or 'cuda'")
