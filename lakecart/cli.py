"""The ``lakecart`` command line: one subcommand per pipeline step.

Airflow tasks run exactly these commands; so can you. Dates are logical dates (YYYY-MM-DD): a job
processes the day it is given, never "today". Configuration: see ``lakecart.config``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

log = logging.getLogger("lakecart")


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _print(obj) -> None:
    print(json.dumps(obj, indent=2, default=str))


def _spark(app: str):
    from lakecart.spark import get_spark

    return get_spark(app_name=f"lakecart-{app}")


# --- commands ------------------------------------------------------------------------------------


def cmd_generate(args: argparse.Namespace) -> int:
    from lakecart.config import get_settings
    from lakecart.jobs.generate import GeneratorSpec, generate

    defects = {}
    for item in args.defect or []:
        kind, _, count = item.partition("=")
        defects[kind] = int(count or 1)
    spec = GeneratorSpec(
        users=args.users,
        items=args.items,
        categories=args.categories,
        days=args.days,
        events_per_day=args.events_per_day,
        start_date=args.start_date,
        seed=args.seed,
        defects=defects,
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
    if args.mapping:
        mapping = ImportMapping.from_yaml(args.mapping)
    else:
        if not (args.user_col and args.item_col and args.time_col):
            raise ValueError("give --mapping FILE.yaml, or at least --user-col, --item-col and --time-col")
        fields: dict = {"user_id": args.user_col, "item_id": args.item_col, "event_time": args.time_col}
        for target, column in (
            ("quantity", args.quantity_col),
            ("price", args.price_col),
            ("category", args.category_col),
        ):
            if column:
                fields[target] = column
        fields["event_type"] = {"constant": args.event_type}
        mapping = ImportMapping(
            name=args.name or Path(args.source).stem, fields=fields, format=args.format, time_format=args.time_format
        )
    _print(run_import(args.source, mapping, raw_root))
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from lakecart.config import get_settings
    from lakecart.jobs import ingest
    from lakecart.jobs.dates import date_range

    settings, spark = get_settings(), _spark(f"ingest-{args.layer}")
    if args.layer == "catalog":
        _print({"items": ingest.run_catalog(spark, settings)})
        return 0
    if args.layer == "publish":
        _print({"published_events": ingest.run_publish(spark, settings, ingest.EVENTS)})
        return 0
    if args.date is None:
        raise ValueError(f"ingest {args.layer} needs --date")
    days = date_range(args.date, args.lookback_days)
    if args.layer == "bronze":
        _print({str(d): n for d, n in ingest.run_bronze(spark, settings, days, args.reprocess).items()})
        return 0
    if args.layer in ("orders", "users"):
        from lakecart.jobs.validate import run_write_audit_publish

        source = ingest.SOURCES[args.layer]
        reports = run_write_audit_publish(spark, settings, source, days, args.reprocess, args.skip_if_absent)
    else:
        reports = ingest.run_silver(spark, settings, days, args.reprocess)
    _print([{**r.__dict__, "reconciles": r.reconciles} for r in reports])
    broken = [r for r in reports if not r.reconciles]
    if broken:
        raise RuntimeError(f"{args.layer} counts do not reconcile: {broken}")
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    from lakecart.config import get_settings
    from lakecart.features import REGISTRY

    settings = get_settings()
    if args.action == "list":
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
    if args.action == "plan":
        from lakecart.features.registry import render
        from lakecart.jobs.feature_store import plan_changes

        changes = plan_changes(settings, args.remove or [])
        print(render(changes))
        return 2 if any(c.action == "blocked" for c in changes) else 0
    if args.action == "apply":
        from lakecart.features.registry import render
        from lakecart.jobs.feature_store import apply

        print(render(apply(_spark("features-apply"), settings, args.remove or [])))
        return 0
    if args.action == "get":
        from lakecart.jobs.feature_store import get_features

        if not (args.view and args.keys and args.as_of):
            raise ValueError("features get needs --view, --keys and --as-of")
        frame = get_features(settings, args.view[0], _keys(args.keys), args.as_of)
        print(frame.to_json(orient="records", date_format="iso", indent=2))
        return 0
    from lakecart.jobs.materialize import run_materialize

    if args.date is None:
        raise ValueError("features materialize needs --date")
    start = args.date - timedelta(days=args.lookback_days)
    reports = run_materialize(_spark("features"), settings, start, args.date, args.view, force=args.force)
    _print({name: r.__dict__ for name, r in reports.items()})
    return 0


def _keys(text: str) -> list[str]:
    """``u1,u2`` for a one-key view; compound keys (user x category) as ``u1:c1,u2:c2``."""
    return [k.replace(":", ",") for k in text.split(",") if k]


def _as_of(text: str):
    from datetime import datetime

    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date or timestamp (YYYY-MM-DD[THH:MM]): {text!r}") from None


def cmd_dataset(args: argparse.Namespace) -> int:
    from lakecart.config import get_settings
    from lakecart.jobs import training_set

    settings = get_settings()
    if args.action == "rebuild":
        if not args.target:
            raise ValueError("dataset rebuild needs a training set id, e.g. churn_20260301")
        result = training_set.rebuild(_spark("dataset"), settings, args.target, write=args.write)
        _print(result)
        return 0 if result["identical"] else 1
    kind = args.target or "retrieval"
    if kind not in training_set.KINDS:
        raise ValueError(f"unknown training set kind {kind!r}; kinds: {', '.join(training_set.KINDS)}")
    if args.date is None:
        raise ValueError("dataset build needs --date")
    params = training_set.BuildParams(
        end=args.date,
        days=args.days,
        test_days=args.test_days,
        horizon_days=args.horizon_days,
        every_days=args.every_days,
        horizons=tuple(int(h) for h in args.horizons.split(",")),
    )
    _print(training_set.run_training_set(_spark("dataset"), settings, kind, params, shards=args.shards))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from lakecart.config import get_settings
    from lakecart.jobs.validate import expand_targets, run_validate
    from lakecart.quality import ValidationFailed

    spark, settings, failed = _spark("validate"), get_settings(), []
    for table in expand_targets(args.table):
        try:
            print(run_validate(spark, settings, table, args.date, args.lookback_days).summary())
        except ValidationFailed as exc:  # validate every table asked for, then fail
            failed.append(str(exc))
    if failed:
        raise ValidationFailed("\n".join(failed))
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    from lakecart.config import get_settings
    from lakecart.tables import register_tables

    spark = _spark("sql")
    register_tables(spark, get_settings())
    frame = spark.sql(args.query)
    print(frame.limit(args.limit).toPandas().to_string(index=False))
    return 0


def _run(model: str, day) -> tuple:
    from lakecart.config import get_settings
    from lakecart.jobs.training_set import dataset_id_for
    from lakecart.training.tasks import TASKS

    return get_settings(), dataset_id_for(day, TASKS[model].dataset_kind)


def cmd_train(args: argparse.Namespace) -> int:
    from lakecart.training import distributed
    from lakecart.training.publish import run_dir_for, run_root_for

    settings, dataset_id = _run(args.model, args.date)
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
    processes = args.processes or settings.training.processes
    rc = distributed.launch(
        "lakecart.training.worker", worker_args, processes, args.hosts or settings.training.hosts, args.on_spark
    )
    if rc != 0:
        raise RuntimeError(f"training failed (exit code {rc}); see the worker logs above")
    run_dir = run_dir_for(settings, args.model, dataset_id)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    _print({k: metrics[k] for k in ("model_version", "test", "baselines", "examples_per_second_per_worker")})
    print(f"run directory: {run_dir} (metrics.json, *.png, tensorboard/, weights/)", file=sys.stderr)
    return 0


# Exit code for "the candidate is not better": Airflow's BashOperator marks the task skipped
# (skip_on_exit_code 99), so publishing downstream is skipped rather than failed.
GATE_HOLD_EXIT = 99


def cmd_evaluate(args: argparse.Namespace) -> int:
    from lakecart.training.publish import evaluate_candidate

    settings, dataset_id = _run(args.model, args.date)
    result = evaluate_candidate(settings, args.model, dataset_id)
    _print(result)
    return 0 if result["publish"] else GATE_HOLD_EXIT


def cmd_publish(args: argparse.Namespace) -> int:
    from lakecart.training.publish import publish

    settings, dataset_id = _run(args.model, args.date)
    _print(publish(settings, args.model, dataset_id, args.date, force=args.force))
    return 0


def cmd_tables(args: argparse.Namespace) -> int:
    from lakecart.summary import table_overview

    _print(table_overview())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from lakecart.demo import run_demo

    return run_demo(args)


# --- parser --------------------------------------------------------------------------------------


def _with_date(p: argparse.ArgumentParser, lookback: bool = True) -> None:
    p.add_argument("--date", type=_date, required=True, help="logical date to process (YYYY-MM-DD)")
    if lookback:
        p.add_argument(
            "--lookback-days",
            type=int,
            default=0,
            help="also process this many days before --date (a backfill through the same code)",
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lakecart",
        description="Raw e-commerce logs -> Delta feature store -> TFRS/Horovod training -> results in the lake.",
        epilog="Configuration: LAKECART_CONFIG=<yaml> and LAKECART_<SECTION>__<KEY> variables "
        "(e.g. LAKECART_LAKE__ROOT=/mnt/lake, LAKECART_SPARK__MASTER=spark://host:7077).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=fn)
        return p

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
        metavar="KIND=COUNT",
        help="plant defects per day, e.g. --defect malformed_json=5 (repeatable)",
    )

    p = add(
        "import",
        cmd_import,
        "bring an existing export into the raw zone: a preset (movielens-100k, instacart-sample) "
        "or any CSV/TSV/Parquet/JSON-lines file with a column mapping (--mapping YAML or flags)",
    )
    p.add_argument("source", help="a preset name, or the path of the file to import")
    p.add_argument("--mapping", help="YAML mapping (see infra/importers/*.yaml)")
    p.add_argument("--out", help="raw folder (default: <lake root>/raw)")
    p.add_argument("--name", help="import name, used for file names and event ids (default: file stem)")
    p.add_argument("--format", choices=["csv", "tsv", "parquet", "jsonl"], default="csv")
    p.add_argument("--user-col")
    p.add_argument("--item-col")
    p.add_argument("--time-col")
    p.add_argument("--time-format", default="iso", help="iso, unix, or a strftime pattern")
    p.add_argument("--quantity-col")
    p.add_argument("--price-col")
    p.add_argument("--category-col")
    p.add_argument("--event-type", default="purchase", choices=["product_view", "add_to_cart", "purchase"])

    p = add(
        "ingest",
        cmd_ingest,
        "clickstream in three steps (the DAG validates between them) - bronze: land new raw files; "
        "silver: parse, quarantine, stage the batch; publish: merge the validated batch into silver.events. "
        "orders, users: the same steps and both validations in one command (silver.order_lines, silver.users). "
        "catalog: the item catalogue. Raw files may be .jsonl, .json, .ndjson, .csv (each optionally .gz) "
        "or .parquet",
    )
    p.add_argument("layer", choices=["bronze", "silver", "publish", "orders", "users", "catalog"])
    p.add_argument("--date", type=_date, help="logical date (bronze, silver)")
    p.add_argument("--lookback-days", type=int, default=0)
    p.add_argument("--reprocess", action="store_true", help="ignore the file ledger: ingest these days again")
    p.add_argument(
        "--skip-if-absent",
        action="store_true",
        help="orders, users: succeed doing nothing when raw/<source>/ does not exist at all "
        "(a deployment that does not send it); a missing day of a source that exists still fails",
    )

    p = add(
        "features",
        cmd_features,
        "the feature store - list: the views declared in features/; plan: what apply would change "
        "(new, changed, removed views; exit 2 if blocked); apply: record the views and create their tables; "
        "materialize: compute views for --date (and --lookback-days before it: a backfill), skipping days "
        "whose inputs did not change; get: values for --keys as of --as-of (no Spark)",
    )
    p.add_argument("action", choices=["list", "plan", "apply", "materialize", "get"])
    p.add_argument("--date", type=_date)
    p.add_argument("--lookback-days", type=int, default=0)
    p.add_argument("--view", action="append", help="only this view (table name, e.g. user_activity_v2)")
    p.add_argument("--force", action="store_true", help="materialize: recompute days whose inputs did not change")
    p.add_argument("--remove", action="append", help="plan/apply: retire this applied view (e.g. features.x_v1)")
    p.add_argument("--keys", help="get: comma-separated keys; compound keys as user:category")
    p.add_argument("--as-of", type=_as_of, help="get: a date or timestamp (UTC)")

    p = add(
        "dataset",
        cmd_dataset,
        "build a point-in-time correct training set (retrieval, churn, demand, category_demand) with a "
        "manifest, or rebuild one from its manifest (Delta time travel; exit 1 if the rows differ)",
    )
    p.add_argument("action", choices=["build", "rebuild"])
    p.add_argument("target", nargs="?", help="build: the kind (default retrieval); rebuild: the training set id")
    p.add_argument("--date", type=_date, help="logical date: data is complete through it")
    p.add_argument("--days", type=int, default=14, help="retrieval: days of interactions; others: span of observations")
    p.add_argument("--test-days", type=int, default=2, help="the newest days held out for evaluation")
    p.add_argument("--horizon-days", type=int, default=28, help="churn: days without a purchase that count as churn")
    p.add_argument("--every-days", type=int, default=7, help="churn/demand: days between observation dates")
    p.add_argument("--horizons", default="7,14,28", help="demand: days ahead to forecast, comma-separated")
    p.add_argument("--shards", type=int, default=4, help="files written, so workers can read disjoint shards")
    p.add_argument("--write", action="store_true", help="rebuild: also replace the stored rows with the rebuilt ones")

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

    p = add("sql", cmd_sql, "run a Spark SQL query over the lake's tables by name, e.g. features.user_activity_v2")
    p.add_argument("query")
    p.add_argument("--limit", type=int, default=50, help="rows printed")

    from lakecart.training.tasks import TASKS

    models = sorted(TASKS)
    p = add(
        "train",
        cmd_train,
        "train a model on its training set for --date with N Horovod workers (horovodrun --gloo; NCCL on GPU "
        "hosts); rank 0 evaluates against the baselines and writes metrics, plots and TensorBoard logs to "
        "<lake models>/<model>/<training set id>",
    )
    p.add_argument("model", choices=models)
    _with_date(p, lookback=False)
    p.add_argument("--processes", type=int, help="workers (default from config: 2)")
    p.add_argument("--hosts", help="horovodrun hosts, e.g. gpu-1:4,gpu-2:4")
    p.add_argument(
        "--on-spark",
        action="store_true",
        help="run the workers as Spark tasks (horovod.spark.run) on the configured master",
    )
    p.add_argument("--epochs", type=int)
    p.add_argument("--global-batch-size", type=int, help="examples per step over all workers")
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
        "the publish gate: score the published model (the champion) on the new run's held-out split and compare; "
        f"exit 0 to publish, {GATE_HOLD_EXIT} when the new model is worse (Airflow then skips publishing)",
    )
    p.add_argument("model", choices=models)
    _with_date(p, lookback=False)

    p = add(
        "publish",
        cmd_publish,
        "write a run's outputs (embeddings, recommendations, churn scores, forecasts) and its registry row to Delta; "
        "refuses unless `lakecart evaluate` passed",
    )
    p.add_argument("model", choices=models)
    _with_date(p, lookback=False)
    p.add_argument("--force", action="store_true", help="publish without the gate (e.g. a deliberate rollback)")

    add("tables", cmd_tables, "list the lake's tables with row counts and Delta versions")

    p = add("demo", cmd_demo, "generate demo data and run the whole pipeline DAG through Airflow")
    p.add_argument("--days", type=int, default=14)
    p.add_argument("--users", type=int, default=500)
    p.add_argument("--items", type=int, default=200)
    p.add_argument("--events-per-day", type=int, default=2000)
    p.add_argument("--fresh", action="store_true", help="delete the demo lake first")
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("py4j", "great_expectations", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from lakecart.jobs.ingest import MissingInputError, RawInputError
    from lakecart.quality import ValidationFailed

    try:
        return args.func(args)
    except ValidationFailed as exc:
        print(f"lakecart: validation failed: {exc}", file=sys.stderr)
        return 1
    except (MissingInputError, RawInputError, FileNotFoundError, KeyError, ValueError, RuntimeError) as exc:
        print(f"lakecart {args.command}: error: {exc}", file=sys.stderr)
        return 1


def run() -> None:
    """Console entry point. Once the command is done (Spark stopped, output flushed), leave without
    interpreter teardown: native thread pools (Arrow, delta-rs, the JVM bridge) can abort the process
    while they are destroyed ("terminate called without an active exception"), which would turn a
    finished task into a failed one."""
    rc = main()
    try:
        from pyspark.sql import SparkSession

        active = SparkSession.getActiveSession()
        if active is not None:
            active.stop()
    except Exception:  # noqa: BLE001 - best effort: the work is already committed
        pass
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


if __name__ == "__main__":
    run()
