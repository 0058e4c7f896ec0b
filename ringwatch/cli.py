"""The ``ringwatch`` command line: generate, ingest, label, train, score, rings, serve, demo, evaluate."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from graph.errors import ConfigError, RingwatchError
from ringwatch.settings import Settings


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ringwatch",
        description="Graph-based fraud ring detection. Everything is written under --home "
        "(default $RINGWATCH_HOME or ./ringwatch-data). Set NEO4J_URI to use Neo4j instead of "
        "the embedded SQLite store.",
    )
    p.add_argument("--home", help="data directory (default: $RINGWATCH_HOME or ./ringwatch-data)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    g = sub.add_parser("generate", help="write a synthetic dataset with planted rings")
    g.add_argument("--users", type=int, default=5000)
    g.add_argument("--seed", type=int, default=7)
    g.add_argument("--out", type=Path, help="output folder (default: HOME/data)")
    g.add_argument("--labels", choices=["all", "transactions"], default="all",
                   help="which verdicts labels.csv holds: account and transaction ones, or chargebacks on transactions only")  # fmt: skip

    i = sub.add_parser("ingest", help="validate and load event files (CSV, Parquet, JSON lines)")
    i.add_argument("files", type=Path, nargs="+")
    i.add_argument("--mapping", type=Path, help="column mapping file (YAML/TOML) for other schemas")
    i.add_argument("--batch-size", type=int, default=50_000)
    i.add_argument("--encoding", default="utf-8", help="text encoding of CSV / JSON-lines files (default utf-8; e.g. latin-1)")

    lb = sub.add_parser("label", help="load a verdicts file (entity,entity_id,label,ts,source)")
    lb.add_argument("file", type=Path)
    lb.add_argument("--encoding", default="utf-8", help="text encoding of a CSV / JSON-lines file (default utf-8)")

    t = sub.add_parser(
        "train",
        help="train GraphSAGE and the tree candidates on the stored graph and labels, ship the best on validation "
        "AUPRC; it becomes current only if not worse than the current model on the held-out data",
    )
    t.add_argument("--seed", type=int, default=7)
    t.add_argument("--epochs", type=int, default=None)
    t.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: CUDA if present")
    t.add_argument("--force", action="store_true", help="make the new model current even if it is worse")
    t.add_argument("--batch-size", type=int, default=None,
                   help="train GraphSAGE on mini-batches of this many seed accounts + transactions per step, all ranks "
                        "together (default: full batch; "
                        f"{DEFAULT_NPROC_BATCH} with --nproc > 1)")  # fmt: skip
    t.add_argument("--fanout", type=_fanout, default=None, help="neighbours sampled per relation and hop, e.g. 15,10 (mini-batch)")
    t.add_argument("--nproc", type=int, default=1,
                   help="data-parallel training processes on this machine (torch.distributed: gloo on the CPU, NCCL on CUDA)")  # fmt: skip
    t.add_argument("--export-dir", type=Path, default=None,
                   help="under torchrun: a folder every rank sees, where rank 0 exports the graph for the others")  # fmt: skip
    _label_options(t)

    s = sub.add_parser("score", help="score accounts and transactions, detect rings, write back")
    s.add_argument("--out", type=Path, help="export account scores to this CSV (transactions beside it)")
    s.add_argument("--model-version", help="artefact version (default: the current one)")

    r = sub.add_parser("rings", help="list the rings found by the last scoring run")
    r.add_argument("--limit", type=int, default=20)
    r.add_argument("--min-tier", choices=["low", "medium", "high"], default="low")

    sv = sub.add_parser("serve", help="start the risk API (FastAPI) on 127.0.0.1")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default 1)")
    sv.add_argument("--no-auth", action="store_true", help="serve without API keys (local exploration only)")

    k = sub.add_parser("apikey", help="make a new API key; prints the secret once and its hashed keys-file entry")
    k.add_argument("--name", required=True, help="who uses it, e.g. checkout (logged; the key never is)")
    k.add_argument("--scopes", required=True, help="comma-separated: score, investigate, label")

    d = sub.add_parser("demo", help="the main job end to end: generate, ingest, train, score, rings, report")
    d.add_argument("--users", type=int, default=5000)
    d.add_argument("--seed", type=int, default=7)

    ev = sub.add_parser("evaluate", help="every baseline on a time-ordered split: report.md with plots")
    ev.add_argument("--out", type=Path, help="report folder (default: HOME/reports/evaluation)")
    ev.add_argument("--seed", type=int, default=7)
    _label_options(ev)

    n = sub.add_parser("neo4j", help="the local Neo4j server (Maven Central jars, 127.0.0.1 only), bulk import")
    verbs = n.add_subparsers(dest="action", required=True, metavar="ACTION")
    for verb, about in (("install", "resolve the jars"), ("start", "start it"), ("stop", "stop it"),
                        ("status", "running or stopped (exit 3)")):  # fmt: skip
        verbs.add_parser(verb, help=about)
    im = verbs.add_parser(
        "import",
        help="fill an EMPTY Neo4j from event files with neo4j-admin's offline importer (validated as by ingest)",
    )
    im.add_argument("files", type=Path, nargs="+")
    im.add_argument("--mapping", type=Path, help="column mapping file (YAML/TOML) for other schemas")
    im.add_argument("--batch-size", type=int, default=50_000)
    im.add_argument("--encoding", default="utf-8", help="text encoding of CSV / JSON-lines files (default utf-8)")
    im.add_argument("--out", type=Path, help="folder for the importer's files (default: HOME/neo4j-import)")
    im.add_argument("--print-only", action="store_true",
                    help="for a Neo4j the project does not run: write the files, print the neo4j-admin command")  # fmt: skip
    im.add_argument("--keep-files", action="store_true", help="keep the importer's files after a local import")
    return p


def _fanout(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(k) for k in text.split(","))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"fanout={text!r}: comma-separated integers, e.g. 15,10") from e


def _label_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--label-delay", type=float, default=None, metavar="DAYS",
                   help="verdicts are known this many days after their payment (default: their own timestamps)")  # fmt: skip
    p.add_argument("--known-fraud-inputs", action="store_true",
                   help="GraphSAGE's heads also read earlier verdicts near each row (unseen checkout events are then "
                        "scored from their identifiers); the tree candidates always do")  # fmt: skip


def _train_config(args: argparse.Namespace, **extra: object) -> object:
    from gnn.training.train import TrainConfig

    delay = None if args.label_delay is None else args.label_delay * 86_400.0
    return TrainConfig(seed=args.seed, label_delay=delay, known_fraud_inputs=args.known_fraud_inputs, **extra)  # type: ignore[arg-type]


#: Mini-batch size of ``train --nproc N`` (N > 1) when ``--batch-size`` is not given.
DEFAULT_NPROC_BATCH = 8192

#: Files ringwatch writes hold events, labels and models: owner-only (0600 files, 0700 folders).
PRIVATE_UMASK = 0o077


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings.load(args.home)
    progress = not args.no_progress
    previous = os.umask(PRIVATE_UMASK)  # inherited by the API's worker processes
    try:
        return _run(args, settings, progress)
    except RingwatchError as e:
        print(f"ringwatch {args.command}: error: {e}", file=sys.stderr)
        return 2
    finally:
        os.umask(previous)


def _run(args: argparse.Namespace, settings: Settings, progress: bool) -> int:
    # Imports are per command so `ringwatch --help` and `rings` stay fast (torch is heavy).
    from ringwatch import pipeline

    if args.command == "neo4j":
        return _neo4j_import(args, settings, progress) if args.action == "import" else _neo4j(args.action)
    if args.command == "generate":
        if args.out:
            from synthetic.generator import SyntheticConfig, generate

            ds = generate(SyntheticConfig(users=args.users, seed=args.seed, labels=args.labels), args.out, progress=progress)
        else:
            ds = pipeline.step_generate(settings, args.users, args.seed, labels=args.labels, progress=progress)
        print(f"wrote {ds.n_events} events for {ds.n_users} users ({ds.n_fraud_users} fraud, {ds.rings} rings)")
        for name in ("events", "labels", "truth_users", "truth_transactions", "truth_identifiers"):
            print(f"  {name:<19} {getattr(ds, name)}")
    elif args.command == "ingest":
        summary = pipeline.step_ingest(
            settings, args.files, mapping=args.mapping, batch_size=args.batch_size, progress=progress,
            encoding=args.encoding,
        )
        print(summary.render())
    elif args.command == "label":
        ls = pipeline.step_label(settings, args.file, progress=progress, encoding=args.encoding)
        print(f"labels: read {ls.read}, loaded {ls.loaded}, quarantined {ls.quarantined}")
        for reason, n in sorted(ls.quarantined_by_reason.items()):
            print(f"  {reason}: {n}")
        if ls.quarantine_file:
            print(f"  quarantine file: {ls.quarantine_file}")
    elif args.command == "train":
        from gnn.core.timing import describe_stages
        from gnn.training.distributed import run_worker, torchrun_world

        launched = torchrun_world()
        if launched is not None and launched[0] > 0:  # torchrun: ranks > 0 train from rank 0's export
            if args.export_dir is None:
                print("ringwatch train: error: under torchrun --export-dir is required", file=sys.stderr)
                return 2
            run_worker(args.export_dir, launched[0], "env://")
            return 0
        extra: dict[str, object] = {"device": args.device, "nproc": args.nproc}
        if args.epochs is not None:
            extra["epochs"] = args.epochs
        batch = args.batch_size
        if batch is None and (args.nproc > 1 or launched is not None):
            batch = DEFAULT_NPROC_BATCH
        if batch is not None:
            extra["batch_size"] = batch
        if args.fanout is not None:
            extra["fanout"] = args.fanout
        if args.export_dir is not None:
            extra["export_dir"] = str(args.export_dir)
        cfg = _train_config(args, **extra)
        out = pipeline.step_train(settings, cfg, progress=progress, force=args.force)  # type: ignore[arg-type]
        a, m = out.artefact, out.artefact.metrics
        print(
            f"model {a.version} ({a.mode}, scorer {a.shipped}) trained on {a.device_trained_on} in {m.seconds:.1f} s, "
            f"{m.epochs_run} GraphSAGE epochs"
        )
        for name, sm in (("accounts", m.accounts_test), ("transactions", m.transactions_test)):
            if sm is not None:
                print(f"  held-out {name:<12} {sm.describe()}")
        print(f"  thresholds accounts medium {a.account_thresholds.medium:.3f} high {a.account_thresholds.high:.3f}")
        if m.account_queue is not None:
            print(f"  review queue (these accounts): {m.account_queue.describe()}, capacity {cfg.review_capacity:.0%}")  # type: ignore[attr-defined]
        for line in pipeline.render_selection(a):
            print(f"  {line}")
        print(f"  artefact {out.path}{'' if out.promoted else ' (saved, not current)'}")
        print(f"  time: {describe_stages(out.stages)}")
    elif args.command == "score":
        so = pipeline.step_score(settings, out=args.out, model_version=args.model_version)
        tiers = [t.value for t in so.result.account_tiers]
        print(
            f"scored {len(tiers)} accounts (high {tiers.count('high')}, medium {tiers.count('medium')}) and "
            f"{len(so.result.txn_scores)} transactions with {so.result.model_version} ({so.result.mode}); "
            f"{len(so.rings)} rings"
        )
        for p in so.exported:
            print(f"  wrote {p}")
    elif args.command == "rings":
        from graph.types import Tier

        floor = Tier(args.min_tier).rank
        with pipeline.store_for(settings) as store:
            every = store.rings()
        rings = [r for r in every if r.tier.rank >= floor]
        if not every:
            print("no rings (run `ringwatch score` first)")
        elif not rings:
            print(f"no rings at tier {args.min_tier} or above ({len(every)} rings below it; try --min-tier low)")
        for ring in rings[: args.limit]:
            print(f"{ring.ring_id}  {ring.tier.value:<6} score {ring.score:.3f}  size {ring.size}")
            print(f"  members: {', '.join(ring.members)}")
            print(f"  devices: {', '.join(ring.shared_devices) or '-'}  ips: {', '.join(ring.shared_ips) or '-'}"
                  f"  merchants: {', '.join(ring.shared_merchants) or '-'}")
    elif args.command == "serve":
        return _serve(args, settings)
    elif args.command == "apikey":
        from api.security import KEYS_FILE_ENV, new_key

        secret, entry = new_key(args.name, [s.strip() for s in args.scopes.split(",") if s.strip()])
        print(f"API key for {args.name} (shown once; give it to the caller, keep only the entry below):\n  {secret}")
        print(f"keys-file entry (add it to the file named by {KEYS_FILE_ENV}, or to RINGWATCH_API_KEYS):\n  {entry}")
    elif args.command == "evaluate":
        rep = pipeline.step_evaluate(settings, out=args.out, seed=args.seed, config=_train_config(args))  # type: ignore[arg-type]
        print(rep.report_path.read_text())
        print(f"wrote {rep.report_path} and {len(rep.plots)} plots in {rep.seconds:.1f} s")
    elif args.command == "demo":
        pipeline.run_demo(settings, users=args.users, seed=args.seed, progress=progress, log=print)
    return 0


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    """Run uvicorn with ``--workers`` processes, each building its app from the environment set
    here (``ringwatch.serve.app_from_env``)."""
    import os
    import shutil

    import uvicorn

    from api.metrics import MULTIPROC_ENV
    from api.server import NO_AUTH_ENV
    from ringwatch.serve import APP_FACTORY, api_config

    if args.workers < 1:
        raise ConfigError(f"--workers={args.workers}: must be at least 1")
    os.environ["RINGWATCH_HOME"] = str(settings.home)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one compute thread per worker (see api.server)
    if args.no_auth:
        os.environ[NO_AUTH_ENV] = "1"
    api_config(settings)  # fail here, once, with a clear message rather than in every worker
    if args.workers > 1 and not os.environ.get(MULTIPROC_ENV):
        metrics_dir = settings.home / "run" / "prometheus"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ[MULTIPROC_ENV] = str(metrics_dir)
    # uvicorn's HTTP parser and loop are httptools and uvloop (its defaults when installed; h11
    # costs more CPU per request). No access log, no X-Forwarded-* rewriting (nothing here reads
    # the client address) and no Server header: less work per request; Date stays (RFC 9110).
    uvicorn.run(APP_FACTORY, factory=True, host=args.host, port=args.port, workers=args.workers,
                log_level="info", access_log=False, proxy_headers=False, server_header=False)  # fmt: skip
    return 0


def _neo4j(action: str) -> int:
    from ringwatch import local_neo4j

    done = local_neo4j.run(action)
    print(done.output)
    if action == "start" or done.running:
        print(f"point ringwatch at it with:\n  {local_neo4j.connection_hint()}")
    return 0 if action != "status" else (0 if done.running else 3)


def _neo4j_import(args: argparse.Namespace, settings: Settings, progress: bool) -> int:
    from ingestion.mapping import ColumnMapping
    from ringwatch import neo4j_import

    mapping = ColumnMapping.from_file(args.mapping) if args.mapping else None
    out = args.out or settings.home / "neo4j-import"
    settings.ensure_dirs()
    if args.print_only:
        summary, files = neo4j_import.write_import_files(
            args.files, out, quarantine_dir=settings.quarantine_dir, mapping=mapping, batch_size=args.batch_size,
            progress=progress, encoding=args.encoding,
        )  # fmt: skip
        outcome = neo4j_import.ImportOutcome(
            load=summary, files=files, command=neo4j_import.import_command(files), admin=None,
            downtime_seconds=0.0, seconds=summary.seconds,
        )  # fmt: skip
    else:
        outcome = neo4j_import.import_local(
            settings, args.files, out, mapping=mapping, batch_size=args.batch_size, progress=progress,
            encoding=args.encoding, keep_files=args.keep_files,
        )  # fmt: skip
    print(outcome.render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
