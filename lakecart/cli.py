"""The ``lakecart`` command line: one subcommand per pipeline step.

Airflow tasks run exactly these commands; so can you. Dates are logical dates (YYYY-MM-DD): a job
processes the day it is given, never "today". Configuration: see ``lakecart.config``.

Errors a person can act on (``LakecartError`` and the few known ones from libraries: configuration,
YAML, a Delta write conflict, a Spark analysis error) end in one line, ``lakecart <command>: error:
...``, with the traceback under ``-v``; anything else is a bug and keeps its traceback. ``--json``
keeps stdout for the result alone: everything else the command, Spark or a worker prints goes to stderr.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import socket
import sys
import traceback
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from lakecart.contracts import (
    CANNOT_TRAIN_EXIT,
    FEATURE_HISTORY,
    GATE_HOLD_EXIT,
    MODEL_TRAINING_SETS,
    TRAINING_SET_SHARDS,
)
from lakecart.errors import LakecartError, UsageError

log = logging.getLogger("lakecart")

# Library errors that mean a problem with the input, not with the code: they get one line too.
DELTA_CONFLICTS = frozenset(
    f"delta.exceptions.base.{name}"
    for name in (
        "DeltaConcurrentModificationException",
        "ConcurrentWriteException",
        "MetadataChangedException",
        "ProtocolChangedException",
        "ConcurrentAppendException",
        "ConcurrentDeleteReadException",
        "ConcurrentDeleteDeleteException",
        "ConcurrentTransactionException",
    )
)
ANALYSIS_ERROR = "pyspark.errors.exceptions.base.AnalysisException"
PARSE_ERROR = "pyspark.errors.exceptions.base.ParseException"
PYDANTIC_ERROR = "pydantic_core._pydantic_core.ValidationError"
YAML_ERROR = "yaml.error.YAMLError"
# Loggers whose INFO/WARNING lines nobody running a command can act on.
NOISY_LOGGERS = (
    "py4j",
    "great_expectations",
    "matplotlib",
    "tensorflow",
    "absl",
    "h5py",
    "urllib3",
    "numexpr",
    "filelock",
    "fsspec",
    "asyncio",
    "PIL",
)

# Where results go: stdout, or with --json the original stdout while fd 1 points at stderr.
_result_fd: int | None = None


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number no smaller than ``minimum`` (``--processes 0`` is refused,
    not taken as "not given")."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(
                f"must be at least 1, got {value}" if minimum == 1 else f"must be {minimum} or more, got {value}"
            )
        return value

    return parse


_positive, _not_negative = _at_least(1), _at_least(0)


def _as_of(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date or timestamp (YYYY-MM-DD[THH:MM]): {text!r}") from None


def _defect(text: str) -> tuple[str, int]:
    kind, _, count = text.partition("=")
    try:
        return kind, int(count or 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected KIND=COUNT, e.g. malformed_json=5, got {text!r}") from None


def _emit(text: str) -> None:
    """Write a command's result: stdout, or the saved stdout under ``--json``."""
    if _result_fd is None:
        print(text, flush=True)
    else:
        os.write(_result_fd, (text + "\n").encode())


def _print(obj) -> None:
    _emit(json.dumps(obj, indent=2, default=str))


def _text(args: argparse.Namespace, text: str, obj) -> None:
    """A result meant for reading: ``text``, or ``obj`` as JSON under ``--json``."""
    if args.json:
        _print(obj)
    else:
        _emit(text)


def _spark(app: str):
    from lakecart.spark import get_spark

    return get_spark(app_name=f"lakecart-{app}")


def _version() -> str:
    from lakecart.lineage import code_version

    version = code_version()
    return f"lakecart {version['package']} (commit {version['commit'] or 'unknown'})"


# --- commands ------------------------------------------------------------------------------------


def cmd_generate(args: argparse.Namespace) -> int:
    from lakecart.config import get_settings
    from lakecart.jobs.generate import GeneratorSpec, generate

    spec = GeneratorSpec(
        users=args.users,
        items=args.items,
        categories=args.categories,
        days=args.days,
        events_per_day=args.events_per_day,
        start_date=args.start_date,
        seed=args.seed,
        defects=dict(args.defect or []),
        format=args.format,
    )
    out = args.out or get_settings().lake.raw
    manifest = generate(spec, out)
    _print({"raw": out, **manifest})
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from lakecart.config import get_settings
    from lakecart.jobs.importer import ImportMapping, run_import
    from lakecart.jobs.presets import PRESETS

    raw_root = Path(args.out or get_settings().lake.raw)
    if args.source in PRESETS:
        _print(PRESETS[args.source](raw_root))
        return 0
    if not Path(args.source).exists():
        raise UsageError(f"{args.source}: no such file, and not a preset ({', '.join(sorted(PRESETS))})")
    if args.mapping:
        mapping = ImportMapping.from_yaml(args.mapping)
    else:
        if args.kind not in ("events", "orders"):
            raise UsageError(f"--kind {args.kind} needs --mapping FILE.yaml (flags cover events and orders)")
        if not (args.user_col and args.item_col and args.time_col):
            raise UsageError("give --mapping FILE.yaml, or at least --user-col, --item-col and --time-col")
        orders = args.kind == "orders"
        if orders and not args.order_col:
            raise UsageError("--kind orders needs --order-col (and --price-col or --amount-col)")
        fields: dict = {"user_id": args.user_col, "item_id": args.item_col}
        fields["order_time" if orders else "event_time"] = args.time_col
        flags = [("quantity", args.quantity_col), ("category", args.category_col)]
        if orders:
            flags += [("order_id", args.order_col), ("unit_price", args.price_col), ("line_amount", args.amount_col)]
            flags += [("discount", args.discount_col)]
        else:
            flags += [("price", args.price_col)]
            fields["event_type"] = {"constant": args.event_type}
        fields |= {target: column for target, column in flags if column}
        if args.measured_lines and not orders:
            raise UsageError("--measured-lines is for --kind orders")
        mapping = ImportMapping(
            name=args.name or Path(args.source).stem,
            fields=fields,
            kind=args.kind,
            format=args.format,
            time_format=args.time_format,
            measured_lines=args.measured_lines,
        )
    _print(run_import(args.source, mapping, raw_root))
    return 0


# Sources ingested, validated and published in one command (``run_write_audit_publish``).
WRITE_AUDIT_PUBLISH_LAYERS = ("orders", "users", "promotions")


def cmd_ingest(args: argparse.Namespace) -> int:
    from lakecart.config import get_settings
    from lakecart.jobs import ingest
    from lakecart.jobs.dates import date_range

    settings = get_settings()
    if args.skip_if_absent:
        named = ingest.SOURCES.get(args.layer)  # orders, users, promotions; the other layers are the clickstream's
        source = "catalog" if args.layer == "catalog" else named.name if named else ingest.EVENTS.name
        if not ingest.raw_source_present(settings, source):
            # A shop without a clickstream (or catalogue, orders, ...): the step has nothing to do, by
            # design, and says so before it starts Spark.
            _print({"skipped": f"no {settings.lake.raw}/{source}/: this shop does not send it"})
            return 0
    if args.layer in WRITE_AUDIT_PUBLISH_LAYERS:  # these validate in this process, after landing
        from lakecart.quality import import_in_background

        import_in_background()
    spark = _spark(f"ingest-{args.layer}")
    if args.layer == "catalog":
        _print({"items": ingest.run_catalog(spark, settings)})
        return 0
    if args.layer == "publish":
        _print({"published_events": ingest.run_publish(spark, settings, ingest.EVENTS)})
        return 0
    days = date_range(args.date, args.lookback_days)
    if args.layer == "bronze":
        _print({str(d): n for d, n in ingest.run_bronze(spark, settings, days, args.reprocess).items()})
        return 0
    if args.layer in WRITE_AUDIT_PUBLISH_LAYERS:
        from lakecart.jobs.validate import run_write_audit_publish

        source = ingest.SOURCES[args.layer]
        reports = run_write_audit_publish(spark, settings, source, days, args.reprocess, args.skip_if_absent)
    else:
        reports = ingest.run_silver(spark, settings, days, args.reprocess)
    _print([{**r.__dict__, "reconciles": r.reconciles} for r in reports])
    broken = [str(r.__dict__) for r in reports if not r.reconciles]
    if broken:
        raise LakecartError(f"{args.layer} counts do not reconcile: {'; '.join(broken)}; see the quarantine table")
    return 0


def _known_views(names: list[str]) -> None:
    from lakecart.features import REGISTRY

    unknown = [n for n in names if n.removeprefix("features.") not in REGISTRY]
    if unknown:
        raise UsageError(f"unknown feature view {', '.join(unknown)}; known: {', '.join(sorted(REGISTRY))}")


def cmd_features_list(args: argparse.Namespace) -> int:
    from lakecart.features import REGISTRY

    _print(
        [
            {
                "table": v.qualified_name,
                "entity": v.entity.name,
                "keys": v.entity.keys,
                "ttl": str(v.ttl),
                "owner": v.owner,
                "fingerprint": v.fingerprint(),
                "features": {f.name: f.dtype for f in v.features},
                "description": v.description,
            }
            for v in REGISTRY.values()
        ]
    )
    return 0


def cmd_features_plan(args: argparse.Namespace) -> int:
    from lakecart.config import get_settings
    from lakecart.features.registry import render
    from lakecart.jobs.feature_store import plan_changes

    changes = plan_changes(get_settings(), args.remove or [])
    _text(args, render(changes), [c.__dict__ for c in changes])
    return 2 if any(c.action == "blocked" for c in changes) else 0


def cmd_features_apply(args: argparse.Namespace) -> int:
    from lakecart.config import get_settings
    from lakecart.features.registry import render
    from lakecart.jobs.feature_store import apply

    changes = apply(_spark("features-apply"), get_settings(), args.remove or [])
    _text(args, render(changes), [c.__dict__ for c in changes])
    return 0


def cmd_features_materialize(args: argparse.Namespace) -> int:
    from lakecart.config import get_settings
    from lakecart.jobs.materialize import run_materialize

    _known_views(args.view or [])
    start = args.date - timedelta(days=args.lookback_days)
    reports = run_materialize(
        _spark("features"),
        get_settings(),
        start,
        args.date,
        args.view,
        force=args.force,
        tiles=not args.no_tiles,
        history=args.history,
    )
    _print({name: r.__dict__ for name, r in reports.items()})
    return 0


def cmd_features_get(args: argparse.Namespace) -> int:
    from lakecart.config import get_settings
    from lakecart.jobs.feature_store import get_features

    _known_views([args.view])
    frame = get_features(get_settings(), args.view.removeprefix("features."), _keys(args.keys), args.as_of)
    _emit(frame.to_json(orient="records", date_format="iso", indent=2))
    return 0


def cmd_features_join(args: argparse.Namespace) -> int:
    import time as clock

    from lakecart.config import get_settings
    from lakecart.features import REGISTRY
    from lakecart.jobs.feature_store import historical_features_to_parquet, read_labels

    _known_views(args.view)
    keys = sorted({k for v in args.view for k in REGISTRY[v.removeprefix("features.")].entity.keys})
    started = clock.perf_counter()
    # Parquet labels go to DuckDB as files (neither they nor the answer pass through Python); CSV
    # labels are read here first, their key columns as text.
    labels = read_labels(args.labels, keys) if args.labels.endswith(".csv") else args.labels
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = historical_features_to_parquet(
        get_settings(),
        labels,
        args.time_column,
        args.view,
        str(out),
        threads=args.threads,
        memory_limit=args.memory_limit,
    )
    _print(
        {
            "out": str(out),
            **summary,
            "seconds": round(clock.perf_counter() - started, 2),
        }
    )
    return 0


def _keys(text: str) -> list[str]:
    """``u1,u2`` for a one-key view; compound keys (user x category) as ``u1:c1,u2:c2``."""
    return [k.replace(":", ",") for k in text.split(",") if k]


def cmd_dataset_build(args: argparse.Namespace) -> int:
    from lakecart.config import get_settings
    from lakecart.jobs import training_set

    if args.kind not in training_set.KINDS:
        raise UsageError(f"unknown training set kind {args.kind!r}; kinds: {', '.join(training_set.KINDS)}")
    if args.days <= args.test_days:
        raise UsageError(f"--days ({args.days}) must be more than --test-days ({args.test_days})")
    params = training_set.BuildParams(
        end=args.date,
        days=args.days,
        test_days=args.test_days,
        horizon_days=args.horizon_days,
        every_days=args.every_days,
        horizons=args.horizons,
        active_days=args.active_days,
    )
    _print(training_set.run_training_set(_spark("dataset"), get_settings(), args.kind, params, shards=args.shards))
    return 0


def cmd_dataset_rebuild(args: argparse.Namespace) -> int:
    from lakecart.config import get_settings
    from lakecart.jobs import training_set

    result = training_set.rebuild(_spark("dataset"), get_settings(), args.dataset_id, write=args.write)
    _print(result)
    if args.write and not result["written"]:
        print(
            f"lakecart dataset: {args.dataset_id}: the rebuilt rows differ from the recorded ones; nothing written",
            file=sys.stderr,
        )
    return 0 if result["identical"] else 1


def _horizons(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(h) for h in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected days, comma-separated (e.g. 7,14,28), got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"each horizon must be at least 1 day, got {text!r}")
    return values


def _skip_if_absent(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--skip-if-absent",
        action="store_true",
        help="succeed doing nothing when raw/<source>/ does not exist at all (a shop that does not send it: no "
        "clickstream, no promotions); a missing day of a source that exists still fails",
    )


def cmd_validate(args: argparse.Namespace) -> int:
    from lakecart.config import get_settings
    from lakecart.jobs.validate import expand_targets, run_gate
    from lakecart.quality import ValidationFailed, import_in_background

    settings = get_settings()
    try:
        targets = expand_targets(args.table, settings)
    except ValueError as exc:  # a pattern that matches nothing: the message lists the known targets
        raise UsageError(str(exc)) from None
    failed, outcomes = [], []
    if args.skip_if_absent:
        from lakecart.jobs.validate import target_exists

        absent = [t for t in targets if not target_exists(settings, t)]
        for table in absent:
            _emit(f"{table}: no such table in this lake (the shop does not send its source): skipped")
        targets = [t for t in targets if t not in absent]
    if not targets:  # nothing left to check: no JVM to start
        if args.json:
            _print([])
        return 0
    import_in_background()  # while the JVM starts
    for outcome in run_gate(_spark("validate"), settings, targets, args.date, args.lookback_days):
        if isinstance(outcome, ValidationFailed):  # validate every table asked for, then fail
            failed.append(str(outcome))
            continue
        outcomes.append(outcome)
        if not args.json:
            _emit(outcome.summary())
    if args.json:
        _print([o.__dict__ for o in outcomes])
    if failed:
        raise ValidationFailed("\n".join(failed))
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    from lakecart.config import get_settings
    from lakecart.summary import run_query

    frame = run_query(_spark("sql"), get_settings(), args.query, allow_writes=args.allow_writes)
    rows = frame.limit(args.limit).toPandas()
    _text(args, rows.to_string(index=False), json.loads(rows.to_json(orient="records", date_format="iso")))
    return 0


def _run(model: str, day) -> tuple:
    from lakecart.config import get_settings
    from lakecart.jobs.training_set import dataset_id_for
    from lakecart.training.tasks import TASKS

    return get_settings(), dataset_id_for(day, TASKS[model].dataset_kind)


def cmd_train(args: argparse.Namespace) -> int:
    from lakecart.training import distributed
    from lakecart.training.publish import run_dir_for, run_root_for
    from lakecart.training.tasks import TASKS

    settings, dataset_id = _run(args.model, args.date)
    reason = TASKS[args.model](settings, dataset_id).cannot_train()
    if reason is not None:
        print(f"lakecart train: skipped: {reason} (exit {CANNOT_TRAIN_EXIT})", file=sys.stderr, flush=True)
        return CANNOT_TRAIN_EXIT
    worker_args = ["--model", args.model, "--dataset-id", dataset_id, "--as-of", args.date.isoformat()]
    worker_args += ["--run-root", str(run_root_for(settings, args.model, dataset_id))]
    for flag in ("epochs", "global_batch_size", "learning_rate", "seed"):
        value = getattr(args, flag)
        if value is not None:
            worker_args += [f"--{flag.replace('_', '-')}", str(value)]
    for param in args.param:
        worker_args += ["--param", param]
    if args.resume:
        worker_args.append("--resume")
    processes = settings.training.processes if args.processes is None else args.processes
    rc = distributed.launch(
        "lakecart.training.worker", worker_args, processes, args.hosts or settings.training.hosts, args.on_spark
    )
    if rc != 0:
        raise LakecartError(f"training failed (exit code {rc}); see the worker logs above")
    run_dir = run_dir_for(settings, args.model, dataset_id)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    _print({k: metrics[k] for k in ("model_version", "test", "baselines", "examples_per_second_per_worker")})
    print(f"run directory: {run_dir} (metrics.json, *.png, tensorboard/, weights/)", file=sys.stderr)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from lakecart.training.publish import evaluate_candidate

    settings, dataset_id = _run(args.model, args.date)
    margin = settings.training.gate_margin if args.margin is None else args.margin
    result = evaluate_candidate(settings, args.model, dataset_id, margin=margin)
    _print(result)
    return 0 if result["publish"] else GATE_HOLD_EXIT


def cmd_publish(args: argparse.Namespace) -> int:
    from lakecart.training.publish import publish

    settings, dataset_id = _run(args.model, args.date)
    _print(publish(settings, args.model, dataset_id, args.date, force=args.force))
    return 0


def cmd_segments(args: argparse.Namespace) -> int:
    from lakecart.config import get_settings
    from lakecart.training.segments import run_segments

    _print(run_segments(get_settings(), args.date, k_range=args.k, seed=args.seed))
    return 0


def _k_values(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(k) for k in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None
    if not values or min(values) < 2:
        raise argparse.ArgumentTypeError(f"every k must be at least 2, got {text!r}")
    return values


def cmd_cluster(args: argparse.Namespace) -> int:
    from lakecart import cluster

    return cluster.main([args.action, *(["--json"] if args.json else [])])


def cmd_airflow(args: argparse.Namespace) -> int:
    from lakecart import airflow_ops

    return airflow_ops.run(args.action, db=args.db, port=args.port, as_json=args.json, emit=_emit)


def cmd_runlog_record(args: argparse.Namespace) -> int:
    from lakecart.runlog import TaskFailure, record  # delta-rs: only this command needs it

    failure = TaskFailure(
        dag_id=args.dag_id,
        task_id=args.task_id,
        run_id=args.run_id,
        map_index=args.map_index,
        try_number=args.try_number,
        logical_date=args.logical_date,
        state=args.state,
        reason=args.reason,
    )
    _print(record(failure))
    return 0


def cmd_docs_build(args: argparse.Namespace) -> int:
    from lakecart.config import get_settings
    from lakecart.quality import build_data_docs

    site = build_data_docs(get_settings().lake.reports)
    failing = sorted(t for t, row in site["tables"].items() if not row["success"])
    text = f"Data Docs: {site['index']} ({len(site['tables'])} tables, {len(failing)} failing)"
    _text(args, text + "".join(f"\n  FAILING {t}" for t in failing), site)
    return 0


def cmd_tables(args: argparse.Namespace) -> int:
    from lakecart.summary import table_overview

    overview = table_overview()
    for row in overview:
        if row.get("error"):
            print(f"lakecart tables: warning: {row['table']}: {row['error']}", file=sys.stderr)
    _print(overview)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from lakecart.runs import render, status

    report = status(latest=args.latest)
    if args.json:
        _print(report)
    else:
        buffer = io.StringIO()
        render(report, buffer)
        _emit(buffer.getvalue().rstrip("\n"))
    return 0


def cmd_online_materialize(args: argparse.Namespace) -> int:
    from lakecart.config import get_settings
    from lakecart.serving.materialize import materialize

    as_of = args.as_of
    if args.date is not None:  # the data date: everything through it is known at the next midnight
        as_of = datetime.combine(args.date + timedelta(days=1), time.min, tzinfo=UTC)
    _print(materialize(get_settings(), as_of, kind=args.store))
    return 0


def cmd_online_status(args: argparse.Namespace) -> int:
    from lakecart.config import get_settings
    from lakecart.serving.online import open_store

    store = open_store(get_settings(), args.store)
    try:
        wanted = ("version", "rows", "created_at", "as_of", "model_version", "tables", "skipped")
        metas = {namespace: store.meta(namespace) for namespace in store.namespaces()}
        _print({n: {k: m[k] for k in wanted if k in m} for n, m in metas.items() if m is not None})
    finally:
        store.close()
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from lakecart.config import get_settings
    from lakecart.serving.app import create_app

    settings = get_settings()
    host, port = args.host or settings.serving.host, args.port or settings.serving.port
    if args.as_of and args.workers > 1:
        raise UsageError("--as-of serves one worker: leave out --workers")
    # Built here first, so a store that cannot be opened is the command's one-line error; more
    # workers each build their own (uvicorn's factory).
    app = create_app(settings, as_of=args.as_of)
    if args.workers > 1:
        app.state.store.close()
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    log.info("lakecart serve: %s (API docs: %s/docs), %d worker(s)", url, url, args.workers)
    # One request per line in the access log would cost more than a lookup: /metrics counts them.
    config = uvicorn.Config(
        app if args.workers == 1 else "lakecart.serving.app:app_from_settings",
        factory=args.workers > 1,
        host=host,
        port=port,
        workers=args.workers,
        access_log=False,
        log_level="debug" if getattr(args, "verbose", False) else "warning",
    )
    if args.workers > 1:  # what uvicorn.run does for workers, with a socket that does not wait on Nagle
        from uvicorn.supervisors import Multiprocess

        Multiprocess(config, sockets=[listening_socket(config)]).run()
        return 0
    server = uvicorn.Server(config)
    server.run()
    if not server.started:  # uvicorn logged why (the port is taken, most often)
        raise UsageError(f"could not serve on {url}; see the line above")
    return 0


def listening_socket(config) -> socket.socket:
    """uvicorn's socket for ``--workers N``, with ``TCP_NODELAY``: the workers serve connections
    accepted from it, and without the option every small answer waited ~40 ms for a delayed ACK
    (BENCHMARKS.md, "Online serving"); one worker's asyncio server sets it by itself."""
    sock = config.bind_socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def cmd_demo(args: argparse.Namespace) -> int:
    from lakecart.demo import run_demo

    return run_demo(args)


# --- parser --------------------------------------------------------------------------------------


def _with_date(p: argparse.ArgumentParser, lookback: bool = True) -> None:
    p.add_argument("--date", type=_date, required=True, help="logical date to process (YYYY-MM-DD)")
    if lookback:
        p.add_argument(
            "--lookback-days",
            type=_not_negative,
            default=0,
            help="also process this many days before --date (a backfill through the same code)",
        )


def _common(p: argparse.ArgumentParser) -> None:
    """Options every command takes after its name too (``lakecart tables --json``)."""
    p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging, tracebacks")
    p.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="stdout carries the JSON result only; everything else goes to stderr",
    )


class _Commands:
    """Adds sub-commands (and sub-sub-commands) with their handler and the common options."""

    def __init__(self, parser: argparse.ArgumentParser, dest: str, metavar: str) -> None:
        self.sub = parser.add_subparsers(dest=dest, required=True, metavar=metavar)

    def add(self, name: str, fn: Callable[[argparse.Namespace], int] | None, help_text: str) -> argparse.ArgumentParser:
        p = self.sub.add_parser(name, help=help_text, description=help_text)
        _common(p)
        if fn is not None:
            p.set_defaults(func=fn)
        return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lakecart",
        description="Raw e-commerce logs -> Delta feature store -> TFRS/Horovod training -> results in the lake.",
        epilog="Configuration: LAKECART_CONFIG=<yaml> and LAKECART_<SECTION>__<KEY> variables "
        "(e.g. LAKECART_LAKE__ROOT=/mnt/lake, LAKECART_SPARK__MASTER=spark://host:7077).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging, and tracebacks of errors")
    parser.add_argument(
        "--json", action="store_true", help="stdout carries the JSON result only; everything else goes to stderr"
    )
    parser.add_argument("--version", action="version", version=argparse.SUPPRESS)
    commands = _Commands(parser, "command", "COMMAND")
    add = commands.add

    p = add(
        "generate",
        cmd_generate,
        "write deterministic synthetic raw logs: clickstream events, order lines and user exports per day, "
        "and the catalogue",
    )
    p.add_argument("--out", help="raw folder (default: <lake root>/raw)")
    p.add_argument("--users", type=int, default=500)
    p.add_argument("--items", type=int, default=200)
    p.add_argument("--categories", type=int, default=12)
    p.add_argument("--days", type=int, default=14)
    p.add_argument("--events-per-day", type=int, default=2000)
    p.add_argument("--start-date", type=_date, default=date(2026, 1, 1))
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--format",
        choices=["jsonl", "jsonl.gz", "csv", "parquet"],
        default="jsonl",
        help="raw file format (default jsonl)",
    )
    p.add_argument(
        "--defect",
        action="append",
        type=_defect,
        metavar="KIND=COUNT",
        help="plant defects per day, e.g. --defect malformed_json=5 (repeatable)",
    )

    p = add(
        "import",
        cmd_import,
        "bring an existing export into the raw zone: a preset (movielens-100k, instacart-sample, complete-journey) "
        "or any CSV/TSV/Parquet/JSON-lines file with a column mapping (--mapping YAML, or flags for events and "
        "orders). Kinds: events, orders, catalog, customers, promotions (see docs/ingest.md)",
    )
    p.add_argument("source", help="a preset name, or the path of the file to import")
    p.add_argument("--mapping", help="YAML mapping (see infra/importers/*.yaml)")
    p.add_argument("--out", help="raw folder (default: <lake root>/raw)")
    p.add_argument("--name", help="import name, used for file names and event ids (default: file stem)")
    p.add_argument("--format", choices=["csv", "tsv", "parquet", "jsonl"], default="csv")
    p.add_argument(
        "--kind",
        choices=["events", "orders", "catalog", "customers", "promotions"],
        default="events",
        help="what the export holds (default events); with flags: events or orders",
    )
    p.add_argument("--user-col")
    p.add_argument("--item-col")
    p.add_argument("--time-col")
    p.add_argument("--time-format", default="iso", help="iso, unix, or a strftime pattern")
    p.add_argument("--quantity-col")
    p.add_argument("--price-col", help="events: price; orders: the list unit price")
    p.add_argument("--category-col", help="events: category; orders: feeds the derived catalogue")
    p.add_argument("--order-col", help="orders: the order (basket) id")
    p.add_argument("--amount-col", help="orders: the line total paid, after discounts (instead of --price-col)")
    p.add_argument(
        "--discount-col",
        action="append",
        help="orders: a discount column, its absolute value counts (repeatable: the columns are summed)",
    )
    p.add_argument(
        "--measured-lines",
        choices=["fractional"],
        help="orders: count each line whose quantity is not a whole number (goods sold by weight or volume) as "
        "one purchase at the line's amounts, keeping the figure as exported_quantity (a YAML mapping can choose "
        "the lines by a column instead)",
    )
    p.add_argument("--event-type", default="purchase", choices=["product_view", "add_to_cart", "purchase"])

    p = add(
        "ingest",
        None,
        "clickstream in three steps (the DAG validates between them) - bronze: land new raw files; "
        "silver: parse, quarantine, stage the batch; publish: merge the validated batch into silver.events. "
        "orders, users, promotions: the same steps and both validations in one command (silver.order_lines, "
        "silver.users, silver.promotions). "
        "catalog: the item catalogue. Raw files may be .jsonl, .json, .ndjson, .csv (each optionally .gz) "
        "or .parquet",
    )
    layers = _Commands(p, "layer", "LAYER")
    for layer, help_text in (
        ("bronze", "land raw event files not yet ingested in bronze.events"),
        ("silver", "parse, quarantine and stage bronze events (staging.silver_events)"),
        ("orders", "order lines: bronze, both suites, publish to silver.order_lines"),
        ("users", "user exports: bronze, both suites, publish to silver.users"),
        ("promotions", "promotions: bronze, both suites, publish to silver.promotions"),
    ):
        q = layers.add(layer, cmd_ingest, help_text)
        _with_date(q)
        q.add_argument("--reprocess", action="store_true", help="ignore the file ledger: ingest these days again")
        _skip_if_absent(q)
    _skip_if_absent(layers.add("publish", cmd_ingest, "merge the validated staged batch into silver.events"))
    _skip_if_absent(layers.add("catalog", cmd_ingest, "the item catalogue -> silver.items"))
    p.set_defaults(skip_if_absent=False)

    p = add(
        "features",
        None,
        "the feature store - list: the views declared in features/; plan: what apply would change "
        "(new, changed, removed views; exit 2 if blocked); apply: record the views and create their tables; "
        "materialize: compute views for --date (and --lookback-days before it: a backfill), skipping days "
        "whose inputs did not change and summarising only new or changed source days (tiles); "
        "get: values for --keys as of --as-of (no Spark)",
    )
    actions = _Commands(p, "action", "ACTION")
    actions.add("list", cmd_features_list, "the views declared in features/")
    for action, fn, help_text in (
        ("plan", cmd_features_plan, "what apply would change (new, changed, removed views; exit 2 if blocked)"),
        ("apply", cmd_features_apply, "record the views and create their tables"),
    ):
        q = actions.add(action, fn, help_text)
        q.add_argument("--remove", action="append", help="retire this applied view (e.g. features.x_v1)")
    q = actions.add(
        "materialize",
        cmd_features_materialize,
        "compute views for --date (and --lookback-days before it: a backfill), skipping days whose inputs "
        "did not change",
    )
    _with_date(q)
    q.add_argument("--view", action="append", help="only this view (table name, e.g. user_activity_v2); repeatable")
    q.add_argument("--force", action="store_true", help="recompute days (and tiles) whose inputs did not change")
    q.add_argument(
        "--no-tiles",
        action="store_true",
        help="compute every window from silver instead of the views' kept per-day partials (tiles.*): "
        "the same rows, slower; to check a suspect tile",
    )
    q.add_argument(
        "--history",
        choices=FEATURE_HISTORY,
        default="all",
        help="with --lookback-days: all (default) computes every view for every day; training only the views "
        "a training set joins, the others for --date alone (a backfill then skips history no model reads; "
        "the backfill DAG's default)",
    )
    q = actions.add(
        "join",
        cmd_features_join,
        "attach to every row of a label table each view's features as known at the row's time (point in time "
        "correct, as training sets are built) and write Parquet: DuckDB on this machine, no Spark",
    )
    q.add_argument("labels", help="the label table: a Parquet file or folder, or a CSV file (key columns read as text)")
    q.add_argument(
        "--view", action="append", required=True, help="a view's table name, e.g. user_activity_v2; repeatable"
    )
    q.add_argument("--time-column", default="label_time", help="the labels' time column (default: label_time)")
    q.add_argument("--out", required=True, help="the Parquet file to write")
    q.add_argument("--threads", type=int, help="DuckDB threads (default: every core)")
    q.add_argument(
        "--memory-limit", help="DuckDB's memory limit before it spills to disk, e.g. 2GB (default: 80%% of RAM)"
    )
    q = actions.add("get", cmd_features_get, "values for --keys as of --as-of (no Spark)")
    q.add_argument("--view", required=True, help="the view's table name, e.g. user_activity_v2")
    q.add_argument("--keys", required=True, help="comma-separated keys; compound keys as user:category")
    q.add_argument("--as-of", type=_as_of, required=True, help="a date or timestamp (UTC)")

    p = add(
        "dataset",
        None,
        "build a point-in-time correct training set (retrieval, churn, demand, category_demand) with a "
        "manifest, or rebuild one from its manifest (Delta time travel; exit 1 if the rows differ)",
    )
    actions = _Commands(p, "action", "ACTION")
    q = actions.add("build", cmd_dataset_build, "build a training set of a kind for --date, with its manifest")
    q.add_argument("kind", nargs="?", default="retrieval", help="retrieval (default), churn, demand, category_demand")
    q.add_argument("--date", type=_date, required=True, help="logical date: data is complete through it")
    q.add_argument(
        "--days", type=_positive, default=14, help="retrieval: days of interactions; others: span of observations"
    )
    q.add_argument("--test-days", type=_positive, default=2, help="the newest days held out for evaluation")
    q.add_argument(
        "--horizon-days", type=_positive, default=28, help="churn: days without a purchase that count as churn"
    )
    q.add_argument(
        "--every-days",
        type=_positive,
        default=7,
        help="churn/demand: days between observation dates, counted back from the cut (the newest observation, "
        "whose label window ends on --date); training observations end their label windows by the held-out one",
    )
    q.add_argument(
        "--active-days",
        type=_positive,
        default=90,
        help="churn: a customer is one who bought within this many days up to the observation date (default 90; "
        "raise it for shops whose customers buy rarely)",
    )
    q.add_argument(
        "--horizons", type=_horizons, default="7,14,28", help="demand: days ahead to forecast, comma-separated"
    )
    q.add_argument(
        "--shards",
        type=_positive,
        default=TRAINING_SET_SHARDS,
        help=f"files written, so workers can read disjoint shards (default {TRAINING_SET_SHARDS})",
    )
    q = actions.add(
        "rebuild", cmd_dataset_rebuild, "rebuild a training set from its manifest; exit 1 if the rows differ"
    )
    q.add_argument("dataset_id", metavar="ID", help="the training set id, e.g. churn_20260301")
    q.add_argument(
        "--write",
        action="store_true",
        help="also replace the stored rows with the rebuilt ones (e.g. after a vacuum lost them); only when "
        "they are identical to the recorded ones",
    )

    p = add(
        "validate", cmd_validate, "run tables' Great Expectations suites; fails if any expectation of any table fails"
    )
    p.add_argument(
        "table",
        nargs="+",
        help="e.g. bronze.events, staging.silver_events, staging.order_lines, features.user_activity_v2, "
        "training.retrieval; shell-style patterns select several (quote them): 'features.item_*'",
    )
    _with_date(p)
    p.add_argument(
        "--skip-if-absent",
        action="store_true",
        help="skip (with a line) a named table this lake does not have, e.g. bronze.events of a shop without a "
        "clickstream; without it, a missing table is an error",
    )

    p = add(
        "sql",
        cmd_sql,
        "run a read-only Spark SQL query over the lake's tables by name, e.g. features.user_activity_v2 "
        "(one SELECT; tables of the lake only)",
    )
    p.add_argument("query")
    p.add_argument("--limit", type=_positive, default=50, help="rows printed")
    p.add_argument(
        "--allow-writes",
        action="store_true",
        help="operators: also run statements that change tables (DELETE, UPDATE, MERGE, INSERT, RESTORE, ...); logged",
    )

    models = sorted(MODEL_TRAINING_SETS)  # the training modules agree (tests/test_contracts.py)
    p = add(
        "train",
        cmd_train,
        "train a model on its training set for --date with N Horovod workers (horovodrun --gloo; NCCL on GPU "
        "hosts); rank 0 evaluates against the baselines and writes metrics, plots and TensorBoard logs to "
        f"<lake models>/<model>/<training set id>; exits {CANNOT_TRAIN_EXIT} without training when the set cannot "
        "teach the model by design (ranking on a shop without product views; Airflow then skips the task)",
    )
    p.add_argument("model", choices=models)
    _with_date(p, lookback=False)
    p.add_argument("--processes", type=_positive, help="workers (default from config: 2)")
    p.add_argument("--hosts", help="horovodrun hosts, e.g. gpu-1:4,gpu-2:4")
    p.add_argument(
        "--on-spark",
        action="store_true",
        help="run the workers as Spark tasks (horovod.spark.run) on the configured master",
    )
    p.add_argument("--epochs", type=_positive)
    p.add_argument("--global-batch-size", type=_positive, help="examples per step over all workers")
    p.add_argument("--learning-rate", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model-specific, e.g. embedding_dim=64, hidden_layers=[128,64], sampling_bias_correction=false",
    )
    p.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")

    p = add(
        "evaluate",
        cmd_evaluate,
        "the publish gate: on the new run's held-out split, the candidate must beat the task's best baseline "
        "by more than the margin and be at least as good as the published model (the champion); "
        f"exit 0 to publish (the candidate, or the best baseline when no model beats it), "
        f"{GATE_HOLD_EXIT} when the champion stays (Airflow then skips publishing)",
    )
    p.add_argument("model", choices=models)
    _with_date(p, lookback=False)
    p.add_argument(
        "--margin",
        type=float,
        help="how much better than the best baseline, in the primary metric's units (default: training.gate_margin, 0)",
    )

    p = add(
        "publish",
        cmd_publish,
        "write a run's outputs (embeddings, recommendations, churn scores, forecasts) and its registry row to Delta; "
        "refuses unless `lakecart evaluate` passed",
    )
    p.add_argument("model", choices=models)
    _with_date(p, lookback=False)
    p.add_argument("--force", action="store_true", help="publish without the gate (e.g. a deliberate rollback)")

    p = add(
        "segments",
        cmd_segments,
        "segment customers with k-means over recency/frequency/monetary features and the published retrieval "
        "model's embeddings, as of --date; k chosen by silhouette; writes gold.user_segments and "
        "gold.segment_profiles (size, churn risk, top and distinctive categories, common attributes)",
    )
    _with_date(p, lookback=False)
    p.add_argument("--k", type=_k_values, default="2,3,4,5,6,7,8", help="numbers of segments to try (default 2..8)")
    p.add_argument("--seed", type=int, default=0, help="k-means and silhouette sampling seed")

    add("tables", cmd_tables, "list the lake's tables with row counts and Delta versions")
    p = add(
        "serve",
        cmd_serve,
        "the HTTP service (FastAPI, uvicorn): online features, recommendations, re-ranking, similar items, "
        "/healthz, /readyz, /metrics, API docs at /docs (docs/serving.md)",
    )
    p.add_argument("--host", help="address to listen on (default serving.host, 127.0.0.1: loopback only)")
    p.add_argument("--port", type=_at_least(1), help="port (default serving.port, 8000)")
    p.add_argument("--workers", type=_at_least(1), default=1, help="worker processes (default 1)")
    p.add_argument(
        "--as-of",
        type=_as_of,
        help="judge feature TTLs at this instant (UTC) instead of the clock: a historic lake, such as the demo's",
    )
    p = add(
        "online",
        None,
        "the online store (docs/serving.md) - materialize: the newest published values (feature services, "
        "recommendations, churn, segments, most-popular items) into it, each namespace replaced atomically; "
        "status: its namespaces, versions, row counts, when written and from which Delta versions",
    )
    actions = _Commands(p, "action", "ACTION")
    q = actions.add(
        "materialize",
        cmd_online_materialize,
        "write every namespace as of --as-of (default now): one row per entity per feature service, "
        "the published top-k, churn scores, segments, most-popular items; prints the report",
    )
    when = q.add_mutually_exclusive_group()
    when.add_argument("--as-of", type=_as_of, help="a date or timestamp (UTC; default now)")
    when.add_argument("--date", type=_date, help="the data date (what the DAGs pass): as of the midnight after it, UTC")
    q.add_argument("--store", choices=["lmdb", "redis"], help="the store (default serving.online_store)")
    q = actions.add("status", cmd_online_status, "namespaces, versions, row counts, created_at, Delta versions read")
    q.add_argument("--store", choices=["lmdb", "redis"], help="the store (default serving.online_store)")
    p = add("docs", None, "the Great Expectations Data Docs: one offline site for every validated table")
    actions = _Commands(p, "action", "ACTION")
    actions.add(
        "build",
        cmd_docs_build,
        "render <lake root>/reports/data_docs (index.html, tables/<table>.html) from the stored validation results",
    )
    p = add(
        "status",
        cmd_status,
        "the latest job runs (meta.job_runs), failed runs and Airflow task tries, and each table's freshness "
        "(version, last write, the job and logical date that wrote it)",
    )
    p.add_argument("--latest", type=int, default=15, help="how many runs and failures to show (default 15)")

    p = add(
        "cluster",
        cmd_cluster,
        "a local Spark standalone cluster (a master and 2 workers on 127.0.0.1, the pipeline's Python and "
        "Delta's jars on every executor): up, down (stops exactly what up started), status; point jobs at it "
        "with LAKECART_CONFIG=infra/config/spark-standalone-local.yaml (ports: SPARK_MASTER_PORT, ...)",
    )
    p.add_argument("action", choices=["up", "down", "status"])

    p = add(
        "airflow",
        cmd_airflow,
        "Airflow 3 on 127.0.0.1 (scheduler, api-server, dag-processor, triggerer from .venv/airflow; login on): "
        "up (prints the URL and how to log in; unpauses both DAGs), down (stops exactly what up started), status; "
        "see docs/dags.md",
    )
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument(
        "--db",
        choices=["sqlite", "postgres"],
        help="metadata database (default LAKECART_AIRFLOW_DB, else sqlite); postgres: a local server, LocalExecutor",
    )
    p.add_argument("--port", type=_positive, help="api-server port (LAKECART_AIRFLOW_PORT; default 8080 or a free one)")

    p = add("runlog", None, "the run log in the lake: record an Airflow task failure in meta.task_failures")
    actions = _Commands(p, "action", "ACTION")
    q = actions.add("record", cmd_runlog_record, "append one failed task try (the DAGs' on_failure_callback runs this)")
    q.add_argument("--dag-id", required=True)
    q.add_argument("--task-id", required=True)
    q.add_argument("--run-id", required=True)
    q.add_argument("--try-number", type=_not_negative, required=True)
    q.add_argument("--map-index", type=int, default=-1, help="the mapped task's index (-1: not mapped)")
    q.add_argument("--logical-date", default="", help="empty for asset-triggered runs")
    q.add_argument("--state", choices=["failed", "up_for_retry"], default="failed", help="Airflow gave up, or retries")
    q.add_argument("--reason", default="", help="why it failed (the exception Airflow reported)")

    p = add("demo", cmd_demo, "generate demo data and run the whole pipeline DAG through Airflow")
    p.add_argument("--days", type=_positive, default=14)
    p.add_argument("--users", type=_positive, default=500)
    p.add_argument("--items", type=_positive, default=200)
    p.add_argument("--events-per-day", type=_positive, default=2000)
    p.add_argument("--fresh", action="store_true", help="delete the demo lake first")
    return parser


# --- running -------------------------------------------------------------------------------------


def _qualified_names(exc: BaseException) -> set[str]:
    return {f"{c.__module__}.{c.__qualname__}" for c in type(exc).__mro__}


def _first_line(text: str, limit: int = 400) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    first = lines[0] if lines else ""
    return first if len(first) <= limit else first[: limit - 3] + "..."


def one_line(exc: BaseException) -> str | None:
    """The message for an error a person can act on; None for anything else (a bug: keep its traceback)."""
    names = _qualified_names(exc)
    if isinstance(exc, LakecartError):
        return str(exc)
    if isinstance(exc, FileNotFoundError):
        return str(exc)
    if names & DELTA_CONFLICTS:
        return (
            f"another run committed to the same table at the same time ({type(exc).__name__}: "
            f"{_first_line(str(exc), 200)}); nothing of this step was committed, re-run the command"
        )
    if PARSE_ERROR in names:
        return f"the SQL does not parse: {_first_line(str(exc))}"
    if ANALYSIS_ERROR in names:
        return f"{_first_line(str(exc))} (check table and column names: `lakecart tables`)"
    if PYDANTIC_ERROR in names:
        problems = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]  # type: ignore[attr-defined]
        return f"invalid {exc.title}: {'; '.join(problems)}"  # type: ignore[attr-defined]
    if YAML_ERROR in names:
        return f"not valid YAML: {' '.join(str(exc).split())}"
    return None


def _quiet_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.ERROR if noisy == "py4j" else logging.WARNING)
    # pyspark logs every SQL error as a JSON line before raising it; the command prints it once.
    logging.getLogger("SQLQueryContextLogger").setLevel(logging.DEBUG if verbose else logging.CRITICAL)


def main(argv: list[str] | None = None) -> int:
    global _result_fd
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._VersionAction):
            action.version = _version()
    args = parser.parse_args(argv)
    args.verbose = getattr(args, "verbose", False)
    args.json = getattr(args, "json", False)
    _quiet_logging(args.verbose)
    if not args.verbose:  # Great Expectations' progress bars (tqdm): hundreds of lines in a DAG's logs
        os.environ.setdefault("TQDM_DISABLE", "1")
    saved_stdout = None
    if args.json:
        # Results go to the real stdout; fd 1 (this process's prints, the JVM's and the workers'
        # output, which inherit it) goes to stderr.
        sys.stdout.flush()
        saved_stdout, python_stdout = os.dup(1), sys.stdout
        os.dup2(2, 1)
        sys.stdout, _result_fd = sys.stderr, saved_stdout
    try:
        return _run_recorded(args, argv)
    except Exception as exc:
        message = one_line(exc)
        if message is None:
            raise
        log.debug("%s failed", args.command, exc_info=exc)
        if args.verbose:
            traceback.print_exception(exc, file=sys.stderr)
        print(f"lakecart {args.command}: error: {message}", file=sys.stderr, flush=True)
        return 1
    finally:
        if saved_stdout is not None:
            sys.stderr.flush()
            os.dup2(saved_stdout, 1)
            os.close(saved_stdout)
            sys.stdout, _result_fd = python_stdout, None


def _run_recorded(args: argparse.Namespace, argv: list[str] | None) -> int:
    """A job (a command that writes the lake) runs inside a run record (``meta.job_runs``)."""
    from lakecart import runs

    job = runs.job_name(args.command, getattr(args, "layer", None) or getattr(args, "action", None))
    if job not in runs.JOBS:
        return args.func(args)
    with runs.recorded(job, getattr(args, "date", None), sys.argv[1:] if argv is None else argv) as record:
        try:
            rc = args.func(args)
        except Exception as exc:
            record.error = one_line(exc) or f"{type(exc).__name__}: {_first_line(str(exc), 300)}"
            raise
        if rc in (GATE_HOLD_EXIT, CANNOT_TRAIN_EXIT):  # the DAG skips the task: `lakecart status` lists no failure
            record.status = "skipped"
        elif rc:
            record.status, record.error = "failed", f"exit status {rc}"
    return rc


def run() -> None:
    """Console entry point. Once the command is done (Spark stopped, output flushed), leave without
    interpreter teardown: native thread pools (Arrow, delta-rs, the JVM bridge) can abort the process
    while they are destroyed ("terminate called without an active exception"), which would turn a
    finished task into a failed one."""
    try:
        rc = main()
    except SystemExit as exc:  # argparse: --help, --version, a usage error
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
        rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Exception:  # a bug: its traceback, then the same clean exit
        traceback.print_exc()
        rc = 1
    try:
        if "pyspark.sql" in sys.modules:
            from pyspark.sql import SparkSession

            active = SparkSession.getActiveSession()
            if active is not None:
                active.stop()
    except Exception:  # noqa: BLE001 - best effort: the work is already committed
        pass
    _remove_autograph_sources()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


def _remove_autograph_sources() -> None:
    """TensorFlow's autograph writes every function it converts to a ``__autograph_generated_file*.py``
    in the temp folder and removes it at interpreter exit (``atexit``), which ``os._exit`` skips:
    without this, each command that loads or evaluates a model leaves files in /tmp for good."""
    for name, module in list(sys.modules.items()):
        if name.startswith("__autograph_generated_file") and getattr(module, "__file__", None):
            try:
                os.remove(module.__file__)
            except OSError:  # already gone (a temp folder cleaner): nothing to do
                pass


if __name__ == "__main__":
    run()
