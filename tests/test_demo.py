"""The demo's console: one line per task from `airflow dags test`'s output (lakecart/demo.py)."""

from __future__ import annotations

from lakecart.demo import TaskProgress

# Lines as Airflow 3's `dags test` prints them (abridged, same shape).
START = "2026-12-01T14:52:17Z [info ] [DAG TEST] starting task_id={task} map_index=-1 [airflow.sdk] loc=dag.py:1501"
OUTPUT = "2026-12-01T14:52:40Z [info ] {text} [airflow.task.hooks.SubprocessHook] loc=subprocess.py:106"
STATE = (
    "2026-12-01T14:52:43Z [info ] Task instance state updated [airflow.api_fastapi] "
    "loc=task_instances.py:485 new_state={state} rows_affected=1 ti_id=01a2"
)


def test_one_line_per_task_and_the_error_of_a_failed_one():
    progress = TaskProgress()
    shown = []
    for line in (
        START.format(task="ingest_bronze"),
        *(OUTPUT.format(text=f"progress {n}") for n in range(40)),
        STATE.format(state="success"),
        START.format(task="validate_silver"),
        OUTPUT.format(text="lakecart validate: error: staging.silver_events: 13/14 expectations passed"),
        STATE.format(state="failed"),
    ):
        shown += progress.feed(line)
    assert shown[0].split() == ["ingest_bronze", "success", "0", "s"]  # 40 lines of output: none shown
    assert shown[1].split()[:2] == ["validate_silver", "failed"]
    # The failed task's own lines follow, so the console shows why without opening the log.
    assert any("lakecart validate: error: staging.silver_events" in line for line in shown[2:])
    assert len(shown) == 2 + 2  # its output line and the state line itself


def test_the_summary_lists_a_half_created_table_instead_of_failing(settings, capsys):
    from datetime import date
    from pathlib import Path

    import pyarrow as pa
    from deltalake import write_deltalake

    from lakecart.demo import print_summary

    root = Path(settings.lake.root)  # the demo's lake is <root>/lake
    write_deltalake(str(root / "lake" / "silver" / "items"), pa.table({"item_id": ["i1", "i2"]}))
    (root / "lake" / "silver" / "events" / "_delta_log").mkdir(parents=True)  # a killed first commit

    print_summary(root, date(2026, 1, 14))

    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith("silver.")}
    assert lines["silver.items"].split()[1:3] == ["2", "0"]
    assert "no commit" in lines["silver.events"]
