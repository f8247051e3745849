"""End-to-end (slow): Airflow runs the ``lakecart_backfill`` DAG (``airflow dags test``, SQLite) over a
range of tiny generated days, one mapped ``process_day`` instance per day through the daily ingest
commands, then the features over the whole range once. Read back with delta-rs and ``lakecart status``."""

from __future__ import annotations

from datetime import timedelta

import pytest
from deltalake import DeltaTable

from lakecart import tables
from lakecart.config import LakeSettings, Settings
from lakecart.demo import START, run_dag
from lakecart.jobs.generate import GeneratorSpec, generate
from lakecart.runs import status

DAYS = 3
DAY_LIST = [START + timedelta(days=n) for n in range(DAYS)]


@pytest.mark.slow
def test_the_backfill_dag_processes_every_day_then_the_features_over_the_range(tmp_path):
    spec = GeneratorSpec(users=40, items=20, categories=4, days=DAYS, events_per_day=200, start_date=START)
    generate(spec, tmp_path / "raw")
    conf = {"start": DAY_LIST[0].isoformat(), "end": DAY_LIST[-1].isoformat()}
    state, output = run_dag(tmp_path, DAY_LIST[-1], conf, capture=True, dag_id="lakecart_backfill")
    assert state == "success", output[-5000:]

    settings = Settings(lake=LakeSettings(root=str(tmp_path)))
    silver = DeltaTable(tables.table_path(tables.SILVER_EVENTS, settings)).to_pandas(columns=["event_date"])
    assert set(silver["event_date"].astype(str)) == {d.isoformat() for d in DAY_LIST}
    view = DeltaTable(tables.table_path("features.user_activity_v2", settings)).to_pandas(columns=["feature_date"])
    assert {str(d)[:10] for d in view["feature_date"]} == {d.isoformat() for d in DAY_LIST}
    # A view no training set joins gets the end day only (the DAG's feature_history "training").
    affinity = tables.table_path("features.user_category_affinity_v1", settings)
    assert {str(d)[:10] for d in DeltaTable(affinity).to_pandas(columns=["feature_date"])["feature_date"]} == {
        DAY_LIST[-1].isoformat()
    }

    # Every day's ingest ran as its own recorded job, by Airflow; the features once, for the end date.
    report = status(settings, latest=500)
    ingested = {r["logical_date"] for r in report["runs"] if r["job"] == "ingest silver" and r["status"] == "succeeded"}
    assert ingested == {d.isoformat() for d in DAY_LIST}
    materialised = [r for r in report["runs"] if r["job"] == "features materialize"]
    assert [r["logical_date"] for r in materialised] == [DAY_LIST[-1].isoformat()]
    assert all(r["airflow"] and r["airflow"].startswith("lakecart_backfill.") for r in report["runs"])
