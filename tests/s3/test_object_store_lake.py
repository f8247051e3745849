"""The pipeline on an object-store lake equals the same pipeline on local disk.

One tiny generated day goes through ingest (bronze, silver, publish) and one feature view's
materialisation twice, as the CLI runs them (tests/s3/steps.py): once on local disk, once with the
lake in a bucket of the project's own S3 server (``s3a://``). The view is then read back from the
bucket by delta-rs, by pyarrow (the table's files on S3FileSystem) and by DuckDB (over Arrow), each
with the credentials of the environment only, and must equal the local run row for row. The
validation's GX project and the Data Docs site are in the bucket too, as on local disk.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest

from lakecart import storage
from lakecart.s3dev import server_env
from tests.s3 import steps

pytestmark = pytest.mark.s3

VIEW_TABLE = f"features/{steps.VIEW}"


def _sorted(frame):
    frame = frame[sorted(frame.columns)]
    keys = [c for c in ("user_id", "feature_date") if c in frame.columns]
    return frame.sort_values(keys).reset_index(drop=True)


@pytest.fixture(scope="module")
def lakes(s3_server, tmp_path_factory, monkeypatch_module):
    from lakecart.jobs.generate import generate

    work = tmp_path_factory.mktemp("object-store")
    raw = work / "local-root" / "raw"
    generate(steps.tiny_spec(), raw)
    env = server_env(s3_server)
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"):
        monkeypatch_module.setenv(name, env[name])  # this process's readers: the environment only
    bucket_root = f"s3a://{s3_server['bucket']}/run"
    storage.copy_tree(str(raw), f"{bucket_root}/raw")  # lakecart generate writes to local disk

    runs = {}
    for mode, root, changes in (
        ("local", str(work / "local-root"), {}),
        ("s3", bucket_root, {k: v for k, v in env.items() if k.startswith("AWS_")}),
    ):
        done = steps.launch(root, work / f"{mode}.json", changes)
        assert done.returncode == 0, f"{mode}: exit {done.returncode}\n{done.stderr[-6000:]}"
        runs[mode] = (root, json.loads((work / f"{mode}.json").read_text()))
    return runs


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_the_view_read_from_the_bucket_equals_the_local_run(lakes):
    local_root, _ = lakes["local"]
    s3_root, _ = lakes["s3"]
    local = _sorted(storage.open_delta(f"{local_root}/lake/{VIEW_TABLE}").to_pandas())
    uri = f"{s3_root}/lake/{VIEW_TABLE}"
    table = storage.open_delta(uri)  # delta-rs
    remote = _sorted(table.to_pandas())
    assert len(local) > 0
    assert remote.equals(local)

    # pyarrow: the files the log lists, on S3FileSystem built from the environment.
    filesystem, _ = storage.arrow_filesystem(uri)
    files = [f.split("://", 1)[1] for f in table.file_uris()]
    arrow = _sorted(ds.dataset(files, filesystem=filesystem, format="parquet").to_table().to_pandas())
    assert arrow.drop(columns=[c for c in arrow.columns if c not in local.columns]).shape[0] == len(local)
    assert set(arrow["user_id"]) == set(local["user_id"])

    # DuckDB over the Arrow dataset delta-rs opens (its httpfs extension cannot be installed here).
    dataset = table.to_pyarrow_dataset()  # noqa: F841 - DuckDB finds it by name
    [(count, users)] = duckdb.sql("SELECT count(*), count(DISTINCT user_id) FROM dataset").fetchall()
    assert (count, users) == (len(local), local["user_id"].nunique())


def test_every_ingest_table_has_the_local_rows(lakes):
    local_root, _ = lakes["local"]
    s3_root, _ = lakes["s3"]
    local = {(f.layer, f.name) for f in storage.table_folders(f"{local_root}/lake") if f.committed}
    remote = {(f.layer, f.name) for f in storage.table_folders(f"{s3_root}/lake") if f.committed}
    assert remote == local and ("silver", "events") in remote
    for layer, name in sorted(local):
        a = storage.open_delta(f"{local_root}/lake/{layer}/{name}").to_pyarrow_table().num_rows
        b = storage.open_delta(f"{s3_root}/lake/{layer}/{name}").to_pyarrow_table().num_rows
        assert (layer, name, b) == (layer, name, a)


def _projects(index: str) -> list[tuple[str, str]]:
    """(table, verdict) of each row of a Data Docs index."""
    return re.findall(r'<a href="tables/[^"]+">([^<]+)</a></td><td>[^<]*</td><td><span class="(\w+)"', index)


def test_validation_keeps_its_project_and_the_data_docs_in_the_bucket(lakes):
    local_root, _ = lakes["local"]
    s3_root, _ = lakes["s3"]
    work = Path(local_root).parent
    # GX ran in the lake's local working folder, and nothing was made under a folder named "s3a:".
    assert not [p for p in work.rglob("*") if p.name.startswith("s3a:")]
    working = steps.local_dir(work / "s3.json") / "reports" / "gx" / "staging.silver_events"
    assert (working / "gx" / "great_expectations.yml").is_file()

    local_results = sorted(Path(local_root).glob("reports/gx/*/gx/uncommitted/validations/**/*.json"))
    filesystem, base = storage.arrow_filesystem(f"{s3_root}/reports/gx")
    listed = filesystem.get_file_info(pafs.FileSelector(base, recursive=True))
    remote_results = [i.path for i in listed if "/gx/uncommitted/validations/" in i.path and i.path.endswith(".json")]
    assert len(remote_results) == len(local_results) > 0

    index = storage.read_text(f"{s3_root}/reports/data_docs/index.html")
    assert index is not None
    expected = _projects((Path(local_root) / "reports" / "data_docs" / "index.html").read_text())
    assert _projects(index) == expected and ("staging.silver_events", "pass") in expected
    for table, _ in expected:
        assert f"<h1>{table}</h1>" in storage.read_text(f"{s3_root}/reports/data_docs/tables/{table}.html")


def test_historical_features_from_the_bucket_equal_the_local_ones(lakes):
    """The point-in-time join without Spark (``pit_local``) reads a bucket's feature table with the
    lake's storage options and answers as it does on local disk."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lakecart.features import REGISTRY, pit_columnar, pit_local

    local_root, _ = lakes["local"]
    s3_root, _ = lakes["s3"]
    rows = storage.open_delta(f"{local_root}/lake/{VIEW_TABLE}").to_pandas()
    labels = pa.table({"user_id": rows["user_id"].astype(str), "at": rows["available_at"] + pd.Timedelta(days=1)})
    view = REGISTRY[steps.VIEW]
    joined = {
        mode: pit_local.point_in_time_join(labels, "at", [(view, f"{root}/lake/{VIEW_TABLE}")]).to_pandas()
        for mode, root in (("local", local_root), ("s3", s3_root))
    }
    assert len(joined["s3"]) == len(labels) > 0
    assert joined["s3"].notna().any().all()  # every feature column found rows
    by_all = list(joined["s3"].columns)
    assert (
        joined["s3"]
        .sort_values(by_all, ignore_index=True)
        .equals(joined["local"].sort_values(by_all, ignore_index=True))
    )
    # File to file (``join_to_parquet``): the bucket's feature files come through Arrow's S3 file
    # system in chunks, DuckDB keeps the answer; the same table as the Arrow path, in label order.
    out = Path(local_root) / "joined-from-s3.parquet"
    pit_local.join_to_parquet(labels, "at", [(view, f"{s3_root}/lake/{VIEW_TABLE}")], str(out))
    assert pd.read_parquet(out).equals(joined["s3"])
    # Labels on the bucket too (read through Arrow): the same answer.
    fs, path = pafs.FileSystem.from_uri(pit_columnar.arrow_uri(f"{s3_root}/labels/part-0.parquet"))
    pq.write_table(labels, path, filesystem=fs)
    pit_local.join_to_parquet(f"{s3_root}/labels", "at", [(view, f"{s3_root}/lake/{VIEW_TABLE}")], str(out))
    assert pd.read_parquet(out).equals(joined["s3"])


def test_a_raw_folder_is_found_on_the_bucket_without_spark(s3_server, tmp_path, monkeypatch):
    # What `--skip-if-absent` asks before it starts Spark: a source folder with files is there, a
    # source the shop does not send is not (S3 has no folders, only keys under a prefix).
    from lakecart.config import LakeSettings, Settings
    from lakecart.jobs import ingest

    env = server_env(s3_server)
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"):
        monkeypatch.setenv(name, env[name])
    local = tmp_path / "raw" / "orders" / "order_date=2026-01-01"
    local.mkdir(parents=True)
    (local / "part-0.jsonl").write_text('{"order_id": "o1"}\n')
    root = f"s3a://{s3_server['bucket']}/presence"
    storage.copy_tree(str(tmp_path / "raw"), f"{root}/raw")
    settings = Settings(lake=LakeSettings(root=root))
    assert ingest.raw_source_present(settings, "orders")
    assert not ingest.raw_source_present(settings, "events")
    assert not ingest.raw_source_present(settings, "ord")  # a key prefix is not a folder
