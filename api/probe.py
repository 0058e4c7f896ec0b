"""The store probe behind ``/readyz``: whether the graph store answers.

A ``StoreProbe`` pings the store (``GraphStore.ping``) every ``interval`` seconds over a
connection of its own, opened again after a failure; ``health`` is the last result. Requests
never wait on it: they are answered from memory whatever the store does.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from api.results import StoreHealth
from graph.errors import RingwatchError
from graph.store import GraphStore, close_quietly

log = logging.getLogger(__name__)


class StoreProbe:
    """Checks that the store answers; ``run`` is the body of the probe thread.

    Args:
        store_factory: opens the probe's store connection.
        interval: seconds between checks.
    """

    def __init__(self, store_factory: Callable[[], GraphStore], interval: float) -> None:
        self._store_factory = store_factory
        self._interval = interval
        self.health = StoreHealth(None, None, None)

    def run(self, stop: threading.Event) -> None:
        store: GraphStore | None = None
        while True:
            try:
                if store is None:
                    store = self._store_factory()
                store.ping()
                self.health = StoreHealth(True, time.time(), None)
            except RingwatchError as e:
                self.health = StoreHealth(False, time.time(), str(e))
                if store is not None:
                    close_quietly(store, log, "a store connection")
                    store = None
            if stop.wait(self._interval):
                break
        if store is not None:
            close_quietly(store, log, "a store connection")
