"""How stale a worker's view may be: what another worker's event has not reached until the next
snapshot refresh (``InductiveScorer.defer_events``), and when that refresh is due, on an
injected clock."""

from __future__ import annotations

import asyncio

from api.reload import Reloader


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _reloader(clock: FakeClock, refresh_interval: float, loop: asyncio.AbstractEventLoop) -> Reloader:
    return Reloader(lambda: None, None, reload_interval=2.0, refresh_interval=refresh_interval,  # type: ignore[arg-type,return-value]
                    install=lambda _: None, serving=lambda: None, loop=loop, clock=clock)  # fmt: skip


def test_a_refresh_is_due_once_the_refresh_interval_passed_since_the_last_load() -> None:
    clock, loop = FakeClock(), asyncio.new_event_loop()
    try:
        r = _reloader(clock, 300.0, loop)
        r.loaded()
        clock.now += 299.9
        assert not r.refresh_due()
        clock.now += 0.1
        assert r.refresh_due()
        r.loaded()  # a reload restarts the interval
        assert not r.refresh_due()
        never = _reloader(clock, 0.0, loop)
        never.loaded()
        clock.now += 1e9
        assert not never.refresh_due()
    finally:
        loop.close()
