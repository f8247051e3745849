"""Local working copies of lake folders (lakecart/storage.py, LakeSettings.local_dir): where GX projects
and model runs are written with local file APIs, and how they reach the lake. No server: a bucket only
appears as a location to map; the copying itself runs local to local here (the s3 tier copies to a bucket)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

from lakecart import storage
from lakecart.config import LakeSettings, Settings
from lakecart.errors import ConfigError

TMP = Path(tempfile.gettempdir()) / f"lakecart-{os.getuid()}"


def test_a_bucket_lake_works_under_a_local_folder_named_after_it():
    lake = LakeSettings(root="s3a://lake/run")
    assert storage.default_local_dir("s3a://lake/run") == TMP / "lake" / "run"
    assert storage.default_local_dir("s3a://lake") == TMP / "lake"
    assert lake.work_path("s3a://lake/run/models/churn/churn_20260110") == TMP / "lake/run/models/churn/churn_20260110"
    assert lake.work_path("s3a://lake/run") == TMP / "lake/run"
    # s3:// and s3a:// name the same bucket.
    assert lake.work_path("s3://lake/run/reports/gx/t") == TMP / "lake/run/reports/gx/t"
    # ... and back: the lake location of a working path; None outside the working folder.
    assert lake.lake_uri(TMP / "lake/run/models/churn") == "s3a://lake/run/models/churn"
    assert lake.lake_uri(TMP / "lake/run") == "s3a://lake/run"
    assert lake.lake_uri(TMP / "lake/other") is None
    # A location in another bucket still gets a place of its own, unless the folder is chosen.
    assert lake.work_path("s3a://other/x") == TMP / "other/x"
    chosen = LakeSettings(root="s3a://lake/run", local_dir="/srv/work")
    assert chosen.work_path("s3a://lake/run/models/m") == Path("/srv/work/models/m")
    assert chosen.lake_uri(Path("/srv/work/models/m")) == "s3a://lake/run/models/m"
    with pytest.raises(ConfigError, match="outside the lake root"):
        chosen.work_path("s3a://other/x")


def test_a_local_lake_is_its_own_working_folder(tmp_path):
    lake = LakeSettings(root=str(tmp_path / "root"))
    run = tmp_path / "root" / "models" / "m"
    assert lake.work_path(f"{tmp_path}/root/models/m") == run
    assert lake.lake_uri(run) == str(run)  # the same place: nothing to copy
    assert lake.work_path(str(tmp_path / "elsewhere")) == tmp_path / "elsewhere"  # outside the lake: itself
    assert lake.lake_uri(tmp_path / "elsewhere") is None


def test_local_path_refuses_a_bucket_and_says_what_to_use():
    with pytest.raises(ConfigError, match="not on local disk.*work_path.*lake.local_dir"):
        storage.local_path("s3a://lake/models")


def test_sync_copies_only_what_changed(tmp_path):
    source, destination = tmp_path / "run", tmp_path / "copy"
    (source / "weights").mkdir(parents=True)
    (source / "metrics.json").write_text('{"a": 1}')
    (source / "weights" / "model.index").write_bytes(b"0123")
    assert sorted(storage.sync_tree(str(source), str(destination))) == ["metrics.json", "weights/model.index"]
    assert (destination / "weights" / "model.index").read_bytes() == b"0123"
    assert storage.sync_tree(str(source), str(destination)) == []  # same sizes and times: nothing
    assert storage.sync_tree(str(destination), str(source)) == []  # either way

    (destination / "evaluation.json").write_text("{}")  # written on the copy only (the gate)
    assert storage.sync_tree(str(destination), str(source)) == ["evaluation.json"]
    (source / "metrics.json").write_text('{"a": 2}')  # same size, newer
    os.utime(source / "metrics.json", ns=(10**18, 10**18))
    assert storage.sync_tree(str(source), str(destination)) == ["metrics.json"]
    assert (destination / "metrics.json").read_text() == '{"a": 2}'
    # One file on its own; a missing source is an error, also when both name the same folder.
    assert storage.sync_tree(str(source / "metrics.json"), str(tmp_path / "one.json")) == [""]
    assert (tmp_path / "one.json").read_text() == '{"a": 2}'
    with pytest.raises(FileNotFoundError):
        storage.sync_tree(str(tmp_path / "none"), str(tmp_path / "none"))


def test_read_and_write_text(tmp_path):
    uri = str(tmp_path / "a" / "latest")
    assert storage.read_text(uri) is None
    storage.write_text(uri, "v1")
    storage.write_text(uri, "v2")
    assert storage.read_text(uri) == "v2" and sorted(p.name for p in (tmp_path / "a").iterdir()) == ["latest"]


def _finished_run(folder: Path, version: str) -> None:
    (folder / version / "outputs").mkdir(parents=True)
    (folder / version / "metrics.json").write_text(json.dumps({"model_version": version}))
    (folder / version / "outputs" / "candidates.parquet").write_bytes(b"PAR1")
    (folder / "latest").write_text(version)


def test_runs_are_read_back_from_the_lake_into_the_working_folder(tmp_path):
    """A lake whose working folder is elsewhere (as for a bucket, local here): the run the lake's
    ``latest`` names is fetched into the working folder; what the gate writes goes back."""
    from lakecart.training.publish import fetch_run, run_dir_for, run_root_for, store_run

    settings = Settings(lake=LakeSettings(root=str(tmp_path / "lake"), local_dir=str(tmp_path / "work")))
    in_lake = tmp_path / "lake" / "models" / "churn" / "churn_20260110"
    _finished_run(in_lake, "churn-20260110-aaaa")
    assert run_root_for(settings, "churn", "churn_20260110") == tmp_path / "work/models/churn/churn_20260110"

    run = run_dir_for(settings, "churn", "churn_20260110")
    assert run == tmp_path / "work/models/churn/churn_20260110/churn-20260110-aaaa"
    assert json.loads((run / "metrics.json").read_text()) == {"model_version": "churn-20260110-aaaa"}
    (run / "evaluation.json").write_text("{}")
    store_run(settings, run)
    assert (in_lake / "churn-20260110-aaaa" / "evaluation.json").read_text() == "{}"

    outputs = f"{in_lake}/churn-20260110-aaaa/outputs"
    assert fetch_run(settings, f"{outputs}/candidates.parquet").read_bytes() == b"PAR1"
    with pytest.raises(FileNotFoundError, match="no finished churn run"):
        run_dir_for(settings, "churn", "churn_20260111")
