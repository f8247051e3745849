"""The command line (``lakecart.cli``): sub-commands with the flags they need checked at parse time,
``--version``, ``--json`` and one actionable line per error a person can fix - but a bug keeps its
traceback. These run ``main`` in-process and start no Spark."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from lakecart import cli, contracts
from lakecart.config import get_settings
from lakecart.lineage import git_commit

# Every command line the DAGs and the README use must keep parsing (dags/*.py, README "The lakecart
# command line"); each with the handler it must reach.
WINDOW = ["--date", "2026-01-14", "--lookback-days", "13"]
COMMAND_LINES = [
    (["generate", "--days", "14", "--users", "500", "--defect", "malformed_json=5"], "cmd_generate"),
    (["import", "movielens-100k"], "cmd_import"),
    (["ingest", "bronze", *WINDOW], "cmd_ingest"),
    (["ingest", "silver", *WINDOW, "--reprocess"], "cmd_ingest"),
    (["ingest", "publish"], "cmd_ingest"),
    (["ingest", "orders", *WINDOW, "--skip-if-absent"], "cmd_ingest"),
    (["ingest", "users", *WINDOW, "--skip-if-absent"], "cmd_ingest"),
    (["ingest", "catalog"], "cmd_ingest"),
    (["features", "list"], "cmd_features_list"),
    (["features", "plan"], "cmd_features_plan"),
    (["features", "apply", "--remove", "features.x_v1"], "cmd_features_apply"),
    (["features", "materialize", *WINDOW, "--view", "user_activity_v2", "--force"], "cmd_features_materialize"),
    (
        ["features", "get", "--view", "user_activity_v2", "--keys", "u1,u2", "--as-of", "2026-01-14T06:00"],
        "cmd_features_get",
    ),
    (["features", "join", "labels.csv", "--view", "user_activity_v2", "--out", "x.parquet"], "cmd_features_join"),
    (["validate", "bronze.events", "features.user_*", "--date", "2026-01-14"], "cmd_validate"),
    (["dataset", "build", "--date", "2026-01-14", "--days", "14", "--test-days", "2"], "cmd_dataset_build"),
    (["dataset", "build", "demand", "--date", "2026-01-14", "--horizons", "7,14,28"], "cmd_dataset_build"),
    (["dataset", "rebuild", "retrieval_20260114", "--write"], "cmd_dataset_rebuild"),
    (["sql", "SELECT count(*) FROM features.item_demand_v2"], "cmd_sql"),
    (["train", "churn", "--date", "2026-01-14", "--processes", "2", "--epochs", "10"], "cmd_train"),
    (["evaluate", "churn", "--date", "2026-01-14"], "cmd_evaluate"),
    (["publish", "churn", "--date", "2026-01-14", "--force"], "cmd_publish"),
    (["tables"], "cmd_tables"),
    (["segments", "--date", "2026-01-14", "--k", "3,4"], "cmd_segments"),
    (["cluster", "up"], "cmd_cluster"),
    (["demo", "--days", "14", "--fresh"], "cmd_demo"),
]


@pytest.mark.parametrize(("argv", "handler"), COMMAND_LINES, ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_every_documented_command_line_parses_to_its_handler(argv, handler):
    args = cli.build_parser().parse_args(argv)
    assert args.func is getattr(cli, handler)


def test_parsed_values_reach_the_handlers_typed():
    args = cli.build_parser().parse_args(["ingest", "orders", *WINDOW, "--skip-if-absent"])
    assert (args.layer, args.date, args.lookback_days, args.skip_if_absent) == ("orders", date(2026, 1, 14), 13, True)
    args = cli.build_parser().parse_args(["dataset", "build", "--date", "2026-01-14"])
    assert (args.kind, args.horizons) == ("retrieval", (7, 14, 28))
    args = cli.build_parser().parse_args(["generate", "--defect", "malformed_json=5", "--defect", "late_event"])
    assert dict(args.defect) == {"malformed_json": 5, "late_event": 1}


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["ingest", "bronze"], "--date"),
        (["ingest", "silver", "--lookback-days", "3"], "--date"),
        (["features", "materialize"], "--date"),
        (["features", "get", "--view", "user_activity_v2", "--keys", "u1"], "--as-of"),
        (["features", "get", "--keys", "u1", "--as-of", "2026-01-14"], "--view"),
        (["dataset", "build", "churn"], "--date"),
        (["dataset", "rebuild"], "ID"),
        (["train", "churn", "--date", "2026-01-14", "--processes", "0"], "--processes: must be at least 1, got 0"),
        (["train", "churn", "--date", "2026-01-14", "--epochs", "0"], "--epochs: must be at least 1, got 0"),
        (["ingest", "bronze", "--date", "2026-01-14", "--lookback-days", "-1"], "must be 0 or more"),
        (["generate", "--defect", "malformed_json=lots"], "expected KIND=COUNT"),
        (["ingest", "gold"], "invalid choice: 'gold'"),
    ],
)
def test_missing_or_invalid_flags_are_refused_at_parse_time(argv, says, capsys):
    # Before: `--processes 0` was taken as "not given" (args.processes or the default), and a missing
    # --date surfaced as a ValueError from inside the command.
    with pytest.raises(SystemExit) as exited:
        cli.build_parser().parse_args(argv)
    assert exited.value.code == 2
    assert says in capsys.readouterr().err


def test_version_names_the_package_and_the_commit(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"lakecart 0.1.0 (commit {git_commit() or 'unknown'})"


def test_the_gate_exit_code_comes_from_the_contracts():
    assert "GATE_HOLD_EXIT = " not in inspect.getsource(cli)  # one declaration, in lakecart.contracts
    assert (
        f"{contracts.GATE_HOLD_EXIT} when the champion stays"
        in cli.build_parser()._subparsers._group_actions[0].choices["evaluate"].description
    )


def test_the_gate_margin_is_a_flag_and_a_setting(monkeypatch):
    args = cli.build_parser().parse_args(["evaluate", "ranking", "--date", "2026-01-14", "--margin", "0.01"])
    assert args.margin == 0.01
    assert cli.build_parser().parse_args(["evaluate", "ranking", "--date", "2026-01-14"]).margin is None
    monkeypatch.setenv("LAKECART_TRAINING__GATE_MARGIN", "0.02")
    get_settings.cache_clear()
    try:
        assert get_settings().training.gate_margin == 0.02
        monkeypatch.setenv("LAKECART_TRAINING__GATE_MARGIN", "-1")
        get_settings.cache_clear()
        with pytest.raises(Exception, match="gate_margin"):
            get_settings()
    finally:
        get_settings.cache_clear()


@pytest.fixture()
def config(tmp_path, monkeypatch):
    """Write a LAKECART_CONFIG file for this test."""

    def write(text: str):
        path = tmp_path / "lakecart.yaml"
        path.write_text(text)
        monkeypatch.setenv("LAKECART_CONFIG", str(path))
        get_settings.cache_clear()
        return path

    yield write
    get_settings.cache_clear()


def test_a_misspelt_config_key_is_one_line_naming_it(config, capsys):
    path = config("lake:\n  rooot: /mnt/lake\n")
    assert cli.main(["tables"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        f"lakecart tables: error: invalid configuration: unknown key lake.rooot (from LAKECART_CONFIG={path}); "
        "fix or remove it (keys: README, Configuration)"
    )


def test_malformed_yaml_is_one_line_naming_file_and_line(config, capsys):
    path = config("lake:\n  root: /x\n spark: [\n")
    assert cli.main(["tables"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"lakecart tables: error: {path} line 3"), err


def test_a_bug_keeps_its_traceback(monkeypatch):
    def broken(args):
        return {}["no such key"]

    monkeypatch.setattr(cli, "cmd_tables", broken)
    # Before: a KeyError anywhere became one line and the traceback was lost.
    with pytest.raises(KeyError, match="no such key"):
        cli.main(["tables"])


def test_the_projects_errors_are_one_line_and_the_traceback_comes_with_verbose(monkeypatch, capsys):
    from lakecart.errors import UsageError

    def refused(args):
        raise UsageError("give --thing")

    monkeypatch.setattr(cli, "cmd_tables", refused)
    assert cli.main(["tables"]) == 1
    assert capsys.readouterr().err.strip() == "lakecart tables: error: give --thing"
    assert cli.main(["-v", "tables"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and err.rstrip().endswith("error: give --thing")


def test_json_keeps_stdout_for_the_result(monkeypatch, capfd):
    def chatty(args):
        print("progress: 3 tables")  # what a job, a worker or the JVM would print to stdout
        os.system("echo from a child process")
        cli._print({"tables": 3})
        return 0

    monkeypatch.setattr(cli, "cmd_tables", chatty)
    assert cli.main(["tables", "--json"]) == 0
    out, err = capfd.readouterr()
    assert json.loads(out) == {"tables": 3}
    assert "progress: 3 tables" in err and "from a child process" in err


def test_the_console_entry_point_prints_a_one_line_error_and_exits_1(tmp_path):
    env = {**os.environ, "LAKECART_LAKE__ROOOT": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "lakecart.cli", "tables"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "lakecart tables: error: invalid configuration: unknown key lake.rooot (from LAKECART_LAKE__ROOOT); "
        "fix or remove it (keys: README, Configuration)"
    ]
    assert done.stdout == ""


def test_a_truncated_gzip_ends_in_one_line_without_java_traces(tmp_path):
    from lakecart.jobs.generate import GeneratorSpec, generate

    root = tmp_path / "lake-root"
    generate(GeneratorSpec(users=10, items=5, categories=2, days=1, events_per_day=50, format="jsonl.gz"), root / "raw")
    gz = next((root / "raw" / "events").rglob("*.jsonl.gz"))
    gz.write_bytes(gz.read_bytes()[:200])  # cut mid-stream
    env = {**os.environ, "LAKECART_LAKE__ROOT": str(root), "LAKECART_SPARK__SHUFFLE_PARTITIONS": "2"}
    done = subprocess.run(
        [sys.executable, "-m", "lakecart.cli", "ingest", "bronze", "--date", "2026-01-01"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    # Before: ~250 lines of Java stack traces (logged by the executor, the task set and the writer).
    assert not any(line.lstrip().startswith("at ") for line in lines), done.stderr[-3000:]
    assert len(lines) <= 3, lines
    assert lines[-1].startswith("lakecart ingest: error: ") and "cannot read raw file" in lines[-1]


PROGRESS = """
import sys
from lakecart import cli, contracts

def validating(args):
    from tqdm import tqdm  # what Great Expectations draws its "Calculating Metrics" bars with

    for _ in tqdm(range(3), desc="Calculating Metrics"):
        pass
    return 0

cli.cmd_tables = validating
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.parametrize(("flags", "shown"), [([], False), (["-v"], True)])
def test_progress_bars_of_libraries_stay_quiet_unless_verbose(flags, shown):
    env = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"}
    done = subprocess.run(
        [sys.executable, "-c", PROGRESS, *flags, "tables"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert ("Calculating Metrics" in done.stderr) is shown


def test_feature_store_and_training_errors_a_person_can_fix_are_one_line(tmp_path, monkeypatch, capsys):
    """No JVM: an unknown training set and an unapplied view on an empty lake. Before, the first was a
    bare KeyError (a traceback since the CLI keeps them for bugs) and the second a RuntimeError."""
    monkeypatch.setenv("LAKECART_LAKE__ROOT", str(tmp_path))
    get_settings.cache_clear()
    try:
        from deltalake import write_deltalake

        from lakecart import tables
        from lakecart.errors import LakecartError
        from lakecart.training.data import manifest

        write_deltalake(
            tables.table_path(tables.TRAINING_MANIFESTS),
            __import__("pandas").DataFrame({"dataset_id": ["churn_20260101"], "manifest": ["{}"]}),
        )
        with pytest.raises(LakecartError, match="no manifest for training set 'churn_20260102': build it"):
            manifest(get_settings(), "churn_20260102")
        argv = ["features", "get", "--view", "user_activity_v2", "--keys", "u1", "--as-of", "2026-01-01"]
        assert cli.main(argv) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("lakecart features: error: features.user_activity_v2 has no table")
    finally:
        get_settings.cache_clear()


def test_cluster_status_says_nothing_runs(tmp_path, monkeypatch, capsys):
    # No cluster started from this state folder: exit 3 (LSB "not running"), one readable line.
    monkeypatch.setenv("SPARK_CLUSTER_DIR", str(tmp_path / "cluster"))
    assert cli.main(["cluster", "status"]) == 3
    assert capsys.readouterr().out.startswith("Spark cluster: not running")


def test_clickstream_steps_skip_for_a_shop_that_sends_none_when_asked(settings, capsys, in_process_cli):
    (Path(settings.lake.raw) / "orders").mkdir(parents=True)  # an order-only shop
    day = ["--date", "2026-01-01"]
    for layer in ("bronze", "silver", "publish", "catalog"):
        assert (
            cli.main(
                ["ingest", layer, *day, "--skip-if-absent"]
                if layer in ("bronze", "silver")
                else ["ingest", layer, "--skip-if-absent"]
            )
            == 0
        )
        assert "this shop does not send it" in capsys.readouterr().out
    assert cli.main(["ingest", "bronze", *day]) == 1  # without the flag a missing source is an error
    assert cli.main(["validate", "bronze.events", "staging.silver_events", *day, "--skip-if-absent"]) == 0
    assert "no such table in this lake" in capsys.readouterr().out
    assert cli.main(["validate", "bronze.events", *day]) == 1


def test_steps_a_shop_has_no_data_for_skip_before_starting_spark(settings, capsys, monkeypatch):
    def no_spark(app):
        raise AssertionError(f"{app} started Spark for a step it skips")

    monkeypatch.setattr(cli, "_spark", no_spark)
    (Path(settings.lake.raw) / "orders").mkdir(parents=True)  # orders only: no clickstream, users, ...
    day = ["--date", "2026-01-01"]
    skipped = [
        ["ingest", "bronze", *day],
        ["ingest", "silver", *day],
        ["ingest", "publish"],
        ["ingest", "catalog"],
        ["ingest", "users", *day],
        ["ingest", "promotions", *day],
    ]
    for argv in skipped:
        assert cli.main([*argv, "--skip-if-absent"]) == 0, argv
        assert "this shop does not send it" in capsys.readouterr().out
    assert cli.main(["validate", "bronze.events", "staging.silver_events", *day, "--skip-if-absent"]) == 0
    assert "no such table in this lake" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="started Spark"):  # orders are there: the step runs
        cli.main(["ingest", "orders", *day, "--skip-if-absent"])


def test_online_materialize_takes_the_data_date_as_the_midnight_after_it(settings, capfd):
    # What the training DAG passes: --date D means everything through D is known, i.e. as of D+1 00:00 UTC.
    assert cli.main(["online", "materialize", "--date", "2026-01-14", "--json"]) == 0
    assert json.loads(capfd.readouterr().out)["as_of"] == "2026-01-15T00:00:00+00:00"
    with pytest.raises(SystemExit):  # one or the other
        cli.main(["online", "materialize", "--date", "2026-01-14", "--as-of", "2026-01-15"])


def test_the_socket_for_several_serve_workers_sends_small_answers_at_once():
    import socket

    import uvicorn

    from lakecart.cluster import free_port

    # Without TCP_NODELAY each small answer waited ~40 ms for a delayed ACK (BENCHMARKS.md).
    sock = cli.listening_socket(uvicorn.Config("x:y", host="127.0.0.1", port=free_port(), workers=2))
    try:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        sock.close()


def test_train_exits_cannot_train_without_starting_a_worker_for_an_orders_only_shop(settings, capsys):
    """Ranking on a retrieval set without product views: `lakecart train` says why and exits
    CANNOT_TRAIN_EXIT (the training DAG maps it to a skip) before launching Horovod."""
    from lakecart import runs
    from lakecart.training.publish import run_root_for
    from tests.training.test_tasks import write_retrieval_set

    write_retrieval_set(settings, "retrieval_20260301", ["purchase", "purchase"])
    assert cli.main(["train", "ranking", "--date", "2026-03-01"]) == contracts.CANNOT_TRAIN_EXIT
    err = capsys.readouterr().err
    assert "lakecart train: skipped: retrieval_20260301 has no product views: ranking learns" in err
    assert not run_root_for(settings, "ranking", "retrieval_20260301").exists()
    # A skip, not a failure, in the run records too: `lakecart status` does not list it among failures.
    assert runs.read_runs(settings)[["job", "status"]].values.tolist() == [["train", "skipped"]]


AUTOGRAPH = """
import sys
from lakecart import cli

def scoring(args):
    import tensorflow as tf

    @tf.function
    def absolute(x):  # a Python `if` on a tensor: autograph converts it through a generated module
        if x > 0:
            return x
        return -x

    absolute(tf.constant(-2.0))
    generated = [m.__file__ for n, m in sys.modules.items() if n.startswith("__autograph_generated_file")]
    print("GENERATED", *generated, flush=True)
    return 0

cli.cmd_tables = scoring
sys.argv = ["lakecart", "tables"]
cli.run()
"""


def test_the_console_entry_point_leaves_no_autograph_files_behind(tmp_path):
    """The entry point ends with os._exit (no interpreter teardown), which skips the atexit hook
    TensorFlow removes its generated sources with: dozens of files piled up in /tmp."""
    script, temp = tmp_path / "scoring.py", tmp_path / "tmp"  # autograph reads the function's source file
    script.write_text(AUTOGRAPH)
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    generated = next(line.split()[1:] for line in done.stdout.splitlines() if line.startswith("GENERATED"))
    assert generated and all(Path(f).parent == temp for f in generated)  # autograph wrote them here
    assert not list(temp.glob("__autograph_generated_file*"))


def test_import_flags_count_lines_sold_by_weight_as_one_purchase(tmp_path, capfd):
    export = tmp_path / "till.csv"
    export.write_text("basket,customer,sku,at,kg,paid\nB1,U1,apples,2026-01-02T10:00:00Z,0.454,1.36\n")
    flags = ["--order-col", "basket", "--user-col", "customer", "--item-col", "sku", "--time-col", "at"]
    flags += ["--quantity-col", "kg", "--amount-col", "paid", "--out", str(tmp_path / "raw")]
    assert (
        cli.main(["--json", "import", str(export), "--kind", "orders", *flags, "--measured-lines", "fractional"]) == 0
    )
    assert json.loads(capfd.readouterr().out)["lines_counted_as_one_purchase"] == 1
    (line,) = (tmp_path / "raw/orders/order_date=2026-01-02/till.jsonl").read_text().splitlines()
    assert {k: v for k, v in json.loads(line).items() if k in ("quantity", "unit_price", "exported_quantity")} == {
        "quantity": 1,
        "unit_price": 1.36,
        "exported_quantity": 0.454,
    }
    events = ["import", str(export), "--user-col", "customer", "--item-col", "sku", "--time-col", "at"]
    assert cli.main([*events, "--measured-lines", "fractional"]) == 1
    assert "--measured-lines is for --kind orders" in capfd.readouterr().err
