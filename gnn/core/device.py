"""Which torch device ringwatch computes on (CUDA when present, else the CPU), and with how
many CPU threads.

``RINGWATCH_DEVICE=cpu|cuda`` overrides the automatic choice (e.g. to keep a GPU free, or to
check that CPU and GPU agree); an explicit argument overrides both. ``RINGWATCH_THREADS=N`` sets
torch's CPU threads for training (default: the cores this process may run on).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from graph.errors import ConfigError

ENV_VAR = "RINGWATCH_DEVICE"
THREADS_ENV_VAR = "RINGWATCH_THREADS"


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


def pick_threads(preferred: int | None = None) -> int:
    """Torch's CPU threads: ``preferred``, else ``RINGWATCH_THREADS``, else the cores this process
    may run on (its CPU affinity; torch's own default counts the machine's cores, which
    oversubscribes a container limited to a few of them).

    Raises:
        ConfigError: a count that is not a positive integer.
    """
    if preferred is not None:
        if isinstance(preferred, bool) or not isinstance(preferred, int) or preferred < 1:
            raise ConfigError(f"threads={preferred!r}: must be a positive integer")
        return preferred
    text = os.environ.get(THREADS_ENV_VAR, "").strip()
    if text:
        if not text.isdigit() or int(text) < 1:
            raise ConfigError(f"{THREADS_ENV_VAR}={text!r}: must be a positive integer")
        return int(text)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch CPU threads, then put the previous count back."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
