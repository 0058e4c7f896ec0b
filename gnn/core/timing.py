"""Where training time goes: ``Stopwatch`` laps into ``StageTime``s, printed by ``ringwatch train``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StageTime:
    """Wall-clock seconds one stage of training took (``ringwatch train`` prints them)."""

    stage: str
    seconds: float


class Stopwatch:
    """Collects ``StageTime``s: ``lap(name)`` ends a stage that began at the previous lap (or at
    the start)."""

    def __init__(self) -> None:
        self.stages: list[StageTime] = []
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.stages.append(StageTime(name, now - self._last))
        self._last = now

    def restart(self) -> None:
        """The next stage begins now (time since the last lap is not counted)."""
        self._last = time.perf_counter()


def describe_stages(stages: Sequence[StageTime]) -> str:
    """One line: each stage's seconds, in order."""
    return ", ".join(f"{s.stage} {s.seconds:.1f} s" for s in stages)
