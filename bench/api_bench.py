"""Benchmark: the HTTP API under load on loopback (DESIGN §7: p99 ≤ 10 ms for a known account's
risk, p99 ≤ 25 ms for an unseen checkout event, at ≥ 500 requests/s).

Starts ``ringwatch serve`` (``--workers`` uvicorn processes, a real API key, rate limit off) on a
demo home (``--home``, else ``ringwatch demo`` at 5,000 users in a temp dir; the events scored
here are journaled into that home), waits for ``/readyz`` and drives it from a load generator in
its own process (an asyncio ``aiohttp`` client, one connection pool). For each endpoint:

* ``GET /ping``: no key, no model: the ceiling of this server stack on this machine;
* ``GET /v1/accounts/{user_id}/risk``: random known accounts;
* ``POST /v1/score``: unseen checkout events, each a fresh ``txn_id``, a third each of: a new
  account on a known device, a new account on a new device, a known account on its own device;
  merchants drawn like the stored traffic (busy merchants often).

two runs: open loop (``--rate`` requests/s for ``--duration`` s; latency counted from the time
each request was due, so a stalled server is not hidden by a stalled generator) and closed loop
(``--connections`` requests in flight: the most the server gives). Prints req/s, p50/p95/p99 ms,
errors, the share of the ``/ping`` ceiling, the generator's CPU (it shares the 2 cores; at 100 %
of one core it, not the server, is the limit), the workers' CPU (200 %: both cores), the p99 of
each 5 s window of a run (warm-up, stalls), and the RSS of every worker before and after.
``--profile DIR`` records ``py-spy`` samples (a dev dependency: ``pip install -e '.[dev]'``; of the thread holding the
GIL) of one worker during the open-loop risk and score runs. ``--loop``/``--http`` other than
``auto`` start uvicorn directly with that event loop / HTTP parser (to compare
``uvloop``/``httptools`` with asyncio/h11).

    python bench/api_bench.py [--home DIR] [--workers 2] [--rate 500] [--duration 20]
                              [--connections 32] [--port 18900] [--profile DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
KINDS = ("ping", "risk", "score")
TARGET_P99_MS = {"risk": 10.0, "score": 25.0}
WINDOW_S = 5.0  # the p99 of each such slice of a run is printed too
STAGE_FLUSH_S = 2.5  # the workers flush their stage counters once per tail interval (1 s), the loader runs every 2 s


# -- the load generator (its own process: `api_bench.py _loadgen SPEC OUT`) -------------------


def _requests(kind: str, spec: dict, rng: random.Random, tag: str):  # type: ignore[no-untyped-def]
    """An endless stream of (method, path, json body or None) for one endpoint."""
    i = 0
    users, pairs, devices, merchants = spec["users"], spec["pairs"], spec["devices"], spec["merchants"]
    while True:
        i += 1
        if kind == "ping":
            yield "GET", "/ping", None
        elif kind == "risk":
            yield "GET", f"/v1/accounts/{rng.choice(users)}/risk", None
        else:
            mix = i % 3
            new_ip = f"10.{rng.randrange(200, 256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
            if mix == 0:  # new account on a known device
                user, device, ip = f"bench-{tag}-u{i}", rng.choice(devices), new_ip
            elif mix == 1:  # new account, new device
                user, device, ip = f"bench-{tag}-u{i}", f"bench-{tag}-d{i}", new_ip
            else:  # known account on its own device (and its IP, when it had one)
                user, device, ip = rng.choice(pairs)
            body = {
                "txn_id": f"bench-{tag}-t{i}",
                "ts": datetime.now(UTC).isoformat(),
                "user_id": user,
                "device_id": device,
                "ip": ip,
                "merchant_id": rng.choice(merchants),
                "amount": round(rng.lognormvariate(3.5, 1.0), 2),
                "currency": spec["currency"],
            }
            yield "POST", "/v1/score", body


async def _drive(spec: dict) -> dict:
    import aiohttp

    base, kind, mode, duration = spec["base"], spec["kind"], spec["mode"], float(spec["duration"])
    headers = {"X-API-Key": spec["key"]}
    gen = _requests(kind, spec, random.Random(spec["seed"]), spec["tag"])
    lat_due: list[float] = []  # from the time the request was due (open loop) or sent
    lat_sent: list[float] = []  # from the time it was sent
    at: list[float] = []  # when it was due, from the start of the run
    errors: dict[str, int] = {}
    conn = aiohttp.TCPConnector(limit=spec["connections"], force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)

    async with aiohttp.ClientSession(base, connector=conn, timeout=timeout, headers=headers) as session:

        async def one(due: float) -> None:
            method, path, body = next(gen)
            sent = time.perf_counter()
            try:
                async with session.request(method, path, json=body) as r:
                    await r.read()
                    if r.status != 200:
                        errors[str(r.status)] = errors.get(str(r.status), 0) + 1
                        return
            except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
                return
            end = time.perf_counter()
            lat_due.append(end - due)
            lat_sent.append(end - sent)
            at.append(due - t0)

        cpu0, t0 = time.process_time(), time.perf_counter()
        if mode == "open":
            rate = float(spec["rate"])
            tasks: set[asyncio.Task] = set()
            n = 0
            while (now := time.perf_counter()) - t0 < duration:
                due_n = int((now - t0) * rate) + 1
                while n < due_n:  # catch up when the loop was late; each keeps its due time
                    task = asyncio.create_task(one(t0 + n / rate))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                    n += 1
                await asyncio.sleep(max(0.0, t0 + n / rate - time.perf_counter()))
            sent_for = time.perf_counter() - t0
            if tasks:  # what the server did not answer within 10 s of the end counts as unfinished
                await asyncio.wait(tasks, timeout=10)
                pending = [task for task in tasks if not task.done()]
                for task in pending:
                    task.cancel()
                if pending:
                    errors["unfinished"] = len(pending)
        else:
            stop = t0 + duration

            async def worker() -> None:
                while time.perf_counter() < stop:
                    await one(time.perf_counter())

            await asyncio.gather(*(worker() for _ in range(spec["connections"])))
            sent_for = time.perf_counter() - t0
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {"lat_due": lat_due, "lat_sent": lat_sent, "at": at, "errors": errors, "seconds": sent_for, "wall": wall,
            "cpu": cpu}  # fmt: skip


def _loadgen_main(spec_path: str, out_path: str) -> None:
    import uvloop  # the generator shares the 2 cores with the server: the cheaper, the better

    spec = json.loads(Path(spec_path).read_text())
    Path(out_path).write_text(json.dumps(uvloop.run(_drive(spec))))


# -- the server ---------------------------------------------------------------------------------


def _http_json(url: str, timeout: float = 5.0) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


@dataclass
class Server:
    proc: subprocess.Popen
    base: str
    log: Path

    def workers(self) -> list[int]:
        """The uvicorn worker processes (children of the supervisor that run the app)."""
        out = []
        for pid in _children(self.proc.pid):
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            if b"resource_tracker" not in cmd:
                out.append(pid)
        return out or [self.proc.pid]

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
            except ProcessLookupError:
                pass


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            pass
    return kids


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far (all their threads)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
    return total / os.sysconf("SC_CLK_TCK")


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


STAGE_ROWS = (  # (label, stages summed) for the per-event CPU table; "http" and "rest" are derived
    ("HTTP, auth, validation, response (in app)", ("http",)),
    ("journal append + fdatasync", ("journal", "journal_writer")),
    ("inductive scoring", ("score_only",)),
    ("  + other workers' events it touched, folded", ("fold_late",)),
    ("identifier facts, reasons, result", ("reasons",)),
    ("fold own event (scorer, recent)", ("fold_own",)),
    ("retry answers, metrics, alerts", ("bookkeeping",)),
    ("other workers: read their journals", ("tail_read",)),
    ("other workers: record and defer their events", ("fold_others",)),
    ("journal -> store loader thread", ("load",)),
    ("rest: uvicorn, event loop, GC, idle threads", ("rest",)),
)
INSIDE_REQUEST = ("journal", "awaited", "score", "reasons", "fold_own", "bookkeeping")


@dataclass
class StageSample:
    """The workers' stage counters (``/metrics``: ``ringwatch_stage_*``) and their CPU (/proc)."""

    cpu: dict[str, float]  # seconds per stage, all workers
    events: dict[str, float]  # scored, folded
    proc_cpu: float


def stage_sample(server: Server, pids: list[int]) -> StageSample:
    with urllib.request.urlopen(server.base + "/metrics", timeout=30) as r:
        text = r.read().decode()
    cpu: dict[str, float] = {}
    events: dict[str, float] = {}
    for line in text.splitlines():
        for prefix, into, label in (("ringwatch_stage_cpu_seconds_total{", cpu, "stage"),
                                    ("ringwatch_stage_events_total{", events, "kind")):  # fmt: skip
            if line.startswith(prefix):
                labels, _, value = line[len(prefix):].partition("} ")
                name = labels.partition(f'{label}="')[2].partition('"')[0]
                into[name] = into.get(name, 0.0) + float(value)
    return StageSample(cpu=cpu, events=events, proc_cpu=_cpu_seconds(pids))


def stage_table(before: StageSample, after: StageSample) -> list[str]:
    """µs of server CPU per scored event, by stage, across all workers."""
    scored = after.events.get("scored", 0.0) - before.events.get("scored", 0.0)
    folded = after.events.get("folded", 0.0) - before.events.get("folded", 0.0)
    if scored <= 0:
        return ["    (no scored events counted: is the server's ringwatch_stage_* metric there?)"]
    d = {k: after.cpu.get(k, 0.0) - before.cpu.get(k, 0.0) for k in set(after.cpu) | set(before.cpu)}
    d["http"] = d.get("request", 0.0) - sum(d.get(k, 0.0) for k in INSIDE_REQUEST)
    d["score_only"] = d.get("score", 0.0) - d.get("fold_late", 0.0)
    total = after.proc_cpu - before.proc_cpu
    d["rest"] = total - sum(d.get(k, 0.0) for _, ks in STAGE_ROWS for k in ks if k != "rest")
    waited = d.get("awaited", 0.0) / scored * 1e6
    late = after.events.get("late", 0.0) - before.events.get("late", 0.0)
    out = [f"    {scored:.0f} events scored; {folded:.0f} received by another worker ({folded / scored:.2f} per event), "
           f"{late:.0f} of them folded in there because a request touched them"]  # fmt: skip
    for label, ks in STAGE_ROWS:
        v = sum(d.get(k, 0.0) for k in ks) / scored * 1e6
        out.append(f"    {label:<46}{v:9.0f} µs  {v / (total / scored * 1e6):6.1%}")
    out.append(f"    {'total server CPU (/proc, all threads)':<46}{total / scored * 1e6:9.0f} µs")
    if waited:
        out.append(f"    (the journal went to its writer thread: {waited:.0f} µs of other requests ran while one waited)")
    return out


def start_server(home: Path, port: int, workers: int, key_entry: str, loop: str, http: str, log: Path) -> Server:
    env = dict(os.environ, RINGWATCH_HOME=str(home), RINGWATCH_API_KEYS=key_entry, RINGWATCH_RATE_LIMIT="off")
    env.pop("RINGWATCH_NO_AUTH", None)
    if loop == "auto" and http == "auto":  # the shipped path
        cmd = [str(BIN / "ringwatch"), "--home", str(home), "serve", "--port", str(port), "--workers", str(workers)]
    else:  # uvicorn directly, as `ringwatch serve` runs it, with another loop / HTTP parser
        metrics_dir = Path(tempfile.mkdtemp(prefix="rw-apibench-prom-"))
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        cmd = [sys.executable, "-m", "uvicorn", "ringwatch.serve:app_from_env", "--factory", "--host", "127.0.0.1",
               "--port", str(port), "--workers", str(workers), "--loop", loop, "--http", http,
               "--no-access-log", "--no-proxy-headers", "--no-server-header"]  # fmt: skip
    out = log.open("w")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return Server(proc=proc, base=f"http://127.0.0.1:{port}", log=log)


def wait_ready(server: Server, workers: int, timeout: float = 300.0) -> dict:
    """Poll /readyz until ready (each worker loads its own view, so keep asking until every
    worker's answer has been ready a few times in a row)."""
    t0, streak, body = time.monotonic(), 0, {}
    while time.monotonic() - t0 < timeout:
        if server.proc.poll() is not None:
            raise SystemExit(f"server exited ({server.proc.returncode}); see {server.log}:\n{server.log.read_text()[-3000:]}")
        try:
            status, body = _http_json(server.base + "/readyz", timeout=2.0)
            streak = streak + 1 if status == 200 and body.get("status") == "ready" else 0
        except (OSError, ValueError):
            streak = 0
        if streak >= 4 * workers:
            return body
        time.sleep(0.5 if streak == 0 else 0.05)
    raise SystemExit(f"server not ready after {timeout:.0f} s; see {server.log}")


def settle(server: Server, timeout: float = 60.0) -> float:
    """Wait until the server answers ``/ping`` promptly again (a run that overloaded it leaves
    work behind: queued requests, other workers' events still to fold in). Returns the wait."""
    t0, streak = time.monotonic(), 0
    while time.monotonic() - t0 < timeout and streak < 5:
        started = time.perf_counter()
        try:
            _http_json(server.base + "/ping", timeout=timeout)
            streak = streak + 1 if time.perf_counter() - started < 0.05 else 0
        except (OSError, ValueError):
            streak = 0
        time.sleep(0.1)
    return time.monotonic() - t0


# -- what to send ---------------------------------------------------------------------------------


def make_home(home: Path | None) -> Path:
    if home is not None:
        return home
    home = Path(tempfile.mkdtemp(prefix="rw-apibench-")) / "home"
    print(f"building a demo home in {home} (ringwatch demo, 5,000 users) ...", flush=True)
    subprocess.run([str(BIN / "ringwatch"), "--home", str(home), "--no-progress", "demo"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    return home


def traffic_spec(home: Path) -> dict:
    """Known accounts, (account, own device, own IP) triples, devices, merchants weighted by
    their stored traffic, and the usual currency, from the home's store."""
    sys.path.insert(0, str(ROOT))
    from graph.types import NodeType
    from ringwatch.pipeline import store_for
    from ringwatch.settings import Settings

    with store_for(Settings.load(str(home))) as store:
        snap = store.snapshot()
    t = snap.transactions
    users, devices = snap.nodes[NodeType.USER], snap.nodes[NodeType.DEVICE]
    ips, merchants = snap.nodes[NodeType.IP], snap.nodes[NodeType.MERCHANT]
    rng = np.random.default_rng(7)
    ok = np.flatnonzero((t.user >= 0) & (t.device >= 0))
    pick = rng.choice(ok, size=min(5000, ok.size), replace=False)
    pairs = [[str(users[t.user[i]]), str(devices[t.device[i]]), str(ips[t.ip[i]]) if t.ip[i] >= 0 else None] for i in pick]
    m = t.merchant[t.merchant >= 0]
    cur = [c for c in t.currency.tolist() if isinstance(c, str) and len(c) == 3]
    return {
        "users": [str(u) for u in users.tolist()],
        "pairs": pairs,
        "devices": [str(d) for d in devices.tolist()],
        "merchants": [str(merchants[i]) for i in rng.choice(m, size=min(20000, m.size))],
        "currency": max(set(cur), key=cur.count) if cur else "USD",
    }


def new_key() -> tuple[str, str]:
    sys.path.insert(0, str(ROOT))
    from api.security import new_key as make

    return make("bench", ["score", "investigate", "label"])


# -- one run --------------------------------------------------------------------------------------


@dataclass
class Run:
    kind: str
    mode: str
    rps: float
    p50: float
    p95: float
    p99: float
    p99_sent: float
    ok: int
    errors: dict
    gen_cpu: float  # generator CPU, share of one core
    server_cpu: float  # the workers' CPU, in cores (2.0: both cores busy)
    windows: list[float]  # p99 ms per WINDOW_S of the run (by due time): shows warm-up and stalls
    stages: list[str]  # the per-event CPU table (score runs)


def run_load(server: Server, spec: dict, kind: str, mode: str, args: argparse.Namespace, workdir: Path,
             profile_to: Path | None = None, duration: float | None = None) -> Run:  # fmt: skip
    dur = args.duration if duration is None else duration
    tag = f"{int(time.time() * 1000) % 10**9}{kind[0]}{mode[0]}"
    spec = dict(spec, base=server.base, kind=kind, mode=mode, duration=dur, rate=args.rate,
                connections=args.connections, seed=zlib.crc32(tag.encode()), tag=tag)  # fmt: skip
    spec_path, out_path = workdir / f"spec-{tag}.json", workdir / f"out-{tag}.json"
    spec_path.write_text(json.dumps(spec))
    pids = server.workers()
    before = stage_sample(server, pids) if kind == "score" else None
    cpu0, t0 = _cpu_seconds(pids), time.monotonic()
    gen = subprocess.Popen([sys.executable, __file__, "_loadgen", str(spec_path), str(out_path)], cwd=ROOT)
    spy = None
    if profile_to is not None:
        time.sleep(min(2.0, dur / 4))
        pid = server.workers()[0]
        spy = subprocess.Popen([str(BIN / "py-spy"), "record", "--pid", str(pid), "--duration", str(int(dur - 4)),
                                "--rate", "200", "--nonblocking", "--gil", "-o", str(profile_to), "--format",
                                "raw" if profile_to.suffix == ".txt" else "flamegraph"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    gen.wait()
    server_cpu = (_cpu_seconds(pids) - cpu0) / (time.monotonic() - t0)
    if spy is not None:
        _, err = spy.communicate(timeout=60)
        if spy.returncode:
            print(f"py-spy failed: {err.decode()[-500:]}", file=sys.stderr)
    stages: list[str] = []
    if before is not None:  # let the other workers fold the last events in and the counters flush
        settle(server)
        time.sleep(STAGE_FLUSH_S)
        stages = stage_table(before, stage_sample(server, pids))
    res = json.loads(out_path.read_text())
    spec_path.unlink()
    out_path.unlink()
    due, sent = np.array(res["lat_due"]) * 1000.0, np.array(res["lat_sent"]) * 1000.0
    q = np.percentile(due, [50, 95, 99]) if due.size else [float("nan")] * 3
    window = (np.array(res["at"]) // WINDOW_S).astype(int)
    windows = [float(np.percentile(due[window == w], 99)) for w in np.unique(window)]
    return Run(kind=kind, mode=mode, rps=due.size / res["seconds"], p50=q[0], p95=q[1], p99=q[2],
               p99_sent=float(np.percentile(sent, 99)) if sent.size else float("nan"), ok=int(due.size),
               errors=res["errors"], gen_cpu=res["cpu"] / res["wall"], server_cpu=server_cpu, windows=windows,
               stages=stages)  # fmt: skip


def print_profile(path: Path, kind: str, top: int = 12) -> None:
    """The largest shares of samples from py-spy's collapsed stacks (``--format raw``): inclusive
    (on the stack) for the project's own functions, and self (on top) for any function. py-spy runs
    with ``--gil``: a sample is the thread that holds the GIL (the event loop's or a background
    thread's), so the shares are of the worker's Python CPU, not of threads waiting on locks or
    the disk."""
    ours = ("api/", "gnn/", "graph/", "ingestion/", "ringwatch/", "synthetic/")
    incl: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [f.rsplit(":", 1)[0] + ")" if " (" in f else f for f in stack.split(";")]  # drop line numbers
        n = int(count)
        total += n
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for f in set(frames):
            if any(f"({o}" in f for o in ours):
                incl[f] = incl.get(f, 0) + n
    if not total:
        return
    print(f"    {kind}: {total} samples; project code inclusive | any code self")
    a = sorted(incl.items(), key=lambda kv: -kv[1])[:top]
    b = sorted(own.items(), key=lambda kv: -kv[1])[:top]
    for (fa, na), (fb, nb) in zip(a, b, strict=False):
        print(f"      {na / total:6.1%}  {fa[:60]:<60} {nb / total:6.1%}  {fb[:60]}")


# -- main -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--home", type=Path, help="a demo home to serve (default: a fresh `ringwatch demo`)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--port", type=int, default=18900)
    p.add_argument("--rate", type=float, default=500.0, help="open-loop requests/s")
    p.add_argument("--duration", type=float, default=20.0, help="seconds per run")
    p.add_argument("--connections", type=int, default=32, help="closed-loop requests in flight")
    p.add_argument("--kinds", default=",".join(KINDS), help="which endpoints (ping,risk,score)")
    p.add_argument("--modes", default="open,closed", help="open (fixed rate) and/or closed (max throughput)")
    p.add_argument("--loop", default="auto", choices=("auto", "asyncio", "uvloop"))
    p.add_argument("--http", default="auto", choices=("auto", "h11", "httptools"))
    p.add_argument("--profile", type=Path, help="write py-spy flame graphs of one worker here")
    args = p.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k]
    modes = [m for m in args.modes.split(",") if m]
    if args.profile is not None and not (BIN / "py-spy").exists():
        p.error(f"--profile needs py-spy, a dev dependency: {BIN / 'pip'} install -e '.[dev]' (or py-spy)")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally below: stop the server
    home = make_home(args.home)
    spec = traffic_spec(home)
    secret, entry = new_key()
    spec["key"] = secret
    workdir = Path(tempfile.mkdtemp(prefix="rw-apibench-run-"))
    server = start_server(home, args.port, args.workers, entry, args.loop, args.http, workdir / "server.log")
    load1 = os.getloadavg()
    try:
        t0 = time.monotonic()
        ready = wait_ready(server, args.workers)
        started = time.monotonic() - t0
        pids = server.workers()
        _, health = _http_json(server.base + "/healthz", timeout=30.0)
        rss_before = {pid: _rss_mib(pid) for pid in pids}
        for kind in kinds:  # warm-up: every worker's first requests of each kind
            run_load(server, spec, kind, "closed", args, workdir, duration=2.0)
        runs: list[Run] = []
        for kind in kinds:
            for mode in modes:
                prof = None
                if args.profile is not None and mode == "open" and kind != "ping":
                    args.profile.mkdir(parents=True, exist_ok=True)
                    prof = args.profile / f"{kind}.txt"
                waited = settle(server)
                runs.append(run_load(server, spec, kind, mode, args, workdir, profile_to=prof))
                r = runs[-1]
                print(f"  {kind} {mode}: {r.rps:.0f} req/s, p50 {r.p50:.2f} ms, p99 {r.p99:.2f} ms, errors "
                      f"{r.errors or 0} (after {waited:.1f} s to settle)", file=sys.stderr, flush=True)  # fmt: skip
        rss_after = {pid: _rss_mib(pid) for pid in pids}
    finally:
        server.stop()
    load2 = os.getloadavg()

    print(f"\nringwatch API load benchmark: {args.workers} workers on 127.0.0.1:{args.port}, "
          f"loop={args.loop} http={args.http}, {os.cpu_count()} cores")  # fmt: skip
    print(f"  home {home}: {health.get('users')} users, {health.get('transactions')} transactions, "
          f"model {ready.get('model_version')} ({ready.get('mode')}), ready after {started:.1f} s")  # fmt: skip
    print(f"  /readyz inductive: {ready.get('inductive')}"
          + ("" if ready.get("inductive") else "  <-- NO inductive scorer: unseen events are scored by the "
             "identifier FALLBACK, not GraphSAGE " + "; ".join(ready.get("reasons", []))))  # fmt: skip
    print(f"  load average before {load1[0]:.2f}, after {load2[0]:.2f}"
          + ("  (loaded: other work shares the cores)" if max(load1[0], load2[0]) > 1.5 else ""))  # fmt: skip
    print(f"  open loop: {args.rate:.0f} req/s offered for {args.duration:.0f} s, latency from the due time "
          f"(p99 sent: from the actual send); closed loop: {args.connections} in flight\n")  # fmt: skip
    ceiling = {r.mode: r.rps for r in runs if r.kind == "ping"}
    head = (f"  {'endpoint':<34}{'mode':<8}{'req/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'p99 sent':>10}"
            f"{'ok':>8}{'errors':>10}{'of ping':>9}{'gen CPU':>9}{'srv CPU':>9}  target")  # fmt: skip
    print(head)
    print("  " + "-" * (len(head) - 2))
    names = {"ping": "GET /ping", "risk": "GET /v1/accounts/{id}/risk", "score": "POST /v1/score (unseen events)"}
    for r in runs:
        share = f"{r.rps / ceiling[r.mode]:.0%}" if r.mode in ceiling and r.kind != "ping" else ""
        target = ""
        if r.kind in TARGET_P99_MS:
            okp = r.p99 <= TARGET_P99_MS[r.kind]
            okr = r.rps >= 500.0
            target = f"p99≤{TARGET_P99_MS[r.kind]:.0f}:{'yes' if okp else 'NO'}" + (
                f" ≥500/s:{'yes' if okr else 'NO'}" if r.mode == "closed" else "")
        errs = sum(r.errors.values())
        print(f"  {names[r.kind]:<34}{r.mode:<8}{r.rps:8.0f}{r.p50:9.2f}{r.p95:9.2f}{r.p99:9.2f}{r.p99_sent:10.2f}"
              f"{r.ok:8d}{errs:10d}{share:>9}{r.gen_cpu:9.0%}{r.server_cpu:9.0%}  {target}")  # fmt: skip
        if r.errors:
            print(f"    errors: {r.errors}")
        if len(r.windows) > 1:
            print(f"    p99 ms by {WINDOW_S:.0f} s window: " + ", ".join(f"{w:.1f}" for w in r.windows))
        if r.stages:
            print("    server CPU per unseen event, all workers (thread CPU per stage; rest = /proc total - stages):")
            for line in r.stages:
                print(line)
    print(f"\n  worker RSS (VmRSS, MiB):")
    for pid in pids:
        print(f"    pid {pid}: before {rss_before[pid]:7.1f}  after {rss_after.get(pid, float('nan')):7.1f}")
    if args.profile is not None:
        print(f"\n  py-spy of worker {pids[0]} during the open-loop runs (collapsed stacks in {args.profile}):")
        for kind in ("risk", "score"):
            if (args.profile / f"{kind}.txt").exists():
                print_profile(args.profile / f"{kind}.txt", kind)
    print(f"  server log: {server.log}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "_loadgen":
        _loadgen_main(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(main())
