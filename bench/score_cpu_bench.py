"""Benchmark: CPU of one checkout in process, without the load generator's noise.

Two measurements on a home (``--home``, e.g. a copy of a ``ringwatch demo`` home):

- ``score_event``: the serving scorer scores ``--events`` unseen checkout events drawn like
  ``bench/fold_bench.py``'s; each is scored 7 times (the least thread CPU counts) and then
  folded in. Prints the median and mean of the least, and the fold's mean.
- the route: one checkout posted ``--posts`` times straight into the ASGI app (no sockets; after
  the first, the retry answer: HTTP, key check, validation, response). Prints the median and
  least thread CPU per request, three times.

    OMP_NUM_THREADS=1 python bench/score_cpu_bench.py --home COPY_OF_DEMO_HOME
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("OMP_NUM_THREADS", "1")  # as `ringwatch serve` runs its workers

import torch  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from api.app import create_app  # noqa: E402
from api.reload import load_serving_model  # noqa: E402
from api.security import Scope, new_key  # noqa: E402
from fold_bench import _events, _snapshot  # noqa: E402
from ringwatch.pipeline import store_for  # noqa: E402
from ringwatch.serve import api_config  # noqa: E402
from ringwatch.settings import Settings  # noqa: E402


def bench_score_event(home: Path, n: int, seed: int) -> None:
    with store_for(Settings.load(str(home))) as store:
        model = load_serving_model(store, Settings.load(str(home)).models_dir)
    scorer = model.scorer
    assert scorer is not None, "no inductive scorer in this home"
    least, folds = [], []
    for event in _events(_snapshot(home), n, random.Random(seed)):
        best = None
        for _ in range(7):
            t0 = time.thread_time_ns()
            scorer.score_event(event)
            spent = time.thread_time_ns() - t0
            best = spent if best is None else min(best, spent)
        least.append(best)
        t0 = time.thread_time_ns()
        scorer.add_events([event])
        folds.append(time.thread_time_ns() - t0)
    print(f"score_event  least of 7: median {statistics.median(least) / 1e3:.0f} µs  mean {statistics.mean(least) / 1e3:.0f} µs"
          f"  fold own event: mean {statistics.mean(folds) / 1e3:.0f} µs  ({n} events)")  # fmt: skip


def bench_route(home: Path, posts: int) -> None:
    secret, entry = new_key("bench", [Scope.SCORE])
    config = api_config(Settings.load(str(home)), env={"RINGWATCH_API_KEYS": entry, "RINGWATCH_RATE_LIMIT": "off"})
    ts = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = json.dumps({"txn_id": "cpu-bench-t1", "ts": ts, "user_id": "cpu-bench-u1", "device_id": "cpu-bench-d1",
                       "ip": "10.9.9.9", "merchant_id": "m-1", "amount": 12.5, "currency": "USD"}).encode()  # fmt: skip
    headers = [(b"host", b"bench"), (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"x-api-key", secret.encode())]  # fmt: skip
    app = create_app(config)

    async def post() -> int:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
                 "path": "/v1/score", "raw_path": b"/v1/score", "query_string": b"", "root_path": "", "headers": headers,
                 "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "state": {}}  # fmt: skip
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        status = 0

        async def receive() -> dict:  # type: ignore[type-arg]
            if messages:
                return messages.pop()
            await asyncio.sleep(3600)  # the client never disconnects
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:  # type: ignore[type-arg]
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(scope, receive, send)
        return status

    async def run() -> None:
        for _ in range(3):
            spent = []
            for _ in range(posts):
                t0 = time.thread_time_ns()
                status = await post()
                spent.append(time.thread_time_ns() - t0)
            print(f"POST /v1/score retry answer (HTTP {status}): median {statistics.median(spent) / 1e3:.0f} µs"
                  f"  least {min(spent) / 1e3:.0f} µs  ({posts} posts)")  # fmt: skip

    with TestClient(app):  # runs the lifespan (model, journal); the first post is scored
        asyncio.run(run())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--home", type=Path, required=True)
    p.add_argument("--events", type=int, default=600)
    p.add_argument("--posts", type=int, default=2000)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    bench_score_event(args.home, args.events, args.seed)
    bench_route(args.home, args.posts)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
