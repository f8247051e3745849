"""lakecart.storage: the Spark s3a settings and the delta-rs/pyarrow options built from the environment
(no server: the values themselves are checked)."""

from __future__ import annotations

import pytest

from lakecart import storage
from lakecart.errors import ConfigError

SERVER = {
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9900/",
    "AWS_ACCESS_KEY_ID": "dev-key",
    "AWS_SECRET_ACCESS_KEY": "dev-secret",
}


def test_local_lakes_need_nothing():
    assert storage.spark_conf("data") == {}
    assert storage.spark_conf("/mnt/lake") == {}
    assert storage.storage_options("/mnt/lake/lake/silver/events", SERVER) is None
    assert storage.storage_options("file:///mnt/lake/x", SERVER) is None


def test_spark_conf_for_a_local_s3_server_has_endpoint_and_no_secret():
    conf = storage.spark_conf("s3a://shop-lake", SERVER)
    assert conf == {
        "spark.hadoop.fs.s3a.endpoint.region": "us-east-1",  # the default when no region is set
        "spark.delta.logStore.s3a.impl": "io.delta.storage.S3SingleDriverLogStore",
        "spark.hadoop.fs.s3a.endpoint": "http://127.0.0.1:9900",  # trailing slash dropped
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.connection.ssl.enabled": "false",  # http:// endpoint
        "spark.hadoop.fs.s3a.aws.credentials.provider": (
            "software.amazon.awssdk.auth.credentials.EnvironmentVariableCredentialsProvider"
        ),
    }
    assert not any("dev-secret" in v or "dev-key" in v for v in conf.values())


def test_spark_conf_on_aws_keeps_hadoops_own_credential_chain():
    conf = storage.spark_conf("s3a://shop-lake", {"AWS_DEFAULT_REGION": "eu-west-1"})
    assert conf == {
        "spark.hadoop.fs.s3a.endpoint.region": "eu-west-1",
        "spark.delta.logStore.s3a.impl": "io.delta.storage.S3SingleDriverLogStore",
    }


def test_delta_rs_options_from_the_environment():
    env = {**SERVER, "AWS_REGION": "eu-central-1", "AWS_DEFAULT_REGION": "ignored", "AWS_SESSION_TOKEN": "tok"}
    assert storage.storage_options("s3a://lake/lake/gold/x", env) == {
        "AWS_REGION": "eu-central-1",  # AWS_REGION wins over AWS_DEFAULT_REGION
        "AWS_ACCESS_KEY_ID": "dev-key",
        "AWS_SECRET_ACCESS_KEY": "dev-secret",
        "AWS_SESSION_TOKEN": "tok",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9900",
        "AWS_ALLOW_HTTP": "true",
        "AWS_CONDITIONAL_PUT": "etag",  # safe delta-rs commits by default
    }


def test_the_environment_chooses_how_delta_rs_commits():
    env = {"AWS_ENDPOINT_URL_S3": "https://s3.internal:443", "AWS_ENDPOINT_URL": "http://other:1"}
    options = storage.storage_options("s3://lake/t", {**env, "AWS_S3_ALLOW_UNSAFE_RENAME": "true"})
    assert options["AWS_ENDPOINT_URL"] == "https://s3.internal:443"  # the S3-specific variable wins
    assert options["AWS_ALLOW_HTTP"] == "false"
    assert options["AWS_S3_ALLOW_UNSAFE_RENAME"] == "true" and "AWS_CONDITIONAL_PUT" not in options
    dynamo = {"AWS_S3_LOCKING_PROVIDER": "dynamodb", "DELTA_DYNAMO_TABLE_NAME": "locks"}
    options = storage.storage_options("s3://lake/t", dynamo)
    assert (options["AWS_S3_LOCKING_PROVIDER"], options["DELTA_DYNAMO_TABLE_NAME"]) == ("dynamodb", "locks")
    assert "AWS_ENDPOINT_URL" not in options  # AWS itself


def test_a_malformed_endpoint_is_a_config_error():
    with pytest.raises(ConfigError, match="AWS_ENDPOINT_URL=127.0.0.1:9000 is not an http"):
        storage.storage_options("s3a://lake/t", {"AWS_ENDPOINT_URL": "127.0.0.1:9000"})


def test_pyarrow_filesystem_for_a_bucket():
    filesystem, path = storage.arrow_filesystem("s3a://lake/lake/silver/events", SERVER)
    assert type(filesystem).__name__ == "S3FileSystem"
    assert path == "lake/lake/silver/events"  # bucket/key, no scheme
    assert filesystem.region == "us-east-1"


def test_local_path_refuses_a_bucket(tmp_path):
    assert storage.local_path(f"file://{tmp_path}") == tmp_path
    with pytest.raises(ConfigError, match="not on local disk"):
        storage.local_path("s3a://lake/models")


def test_table_folders_on_local_disk(tmp_path):
    (tmp_path / "silver" / "events" / "_delta_log").mkdir(parents=True)
    (tmp_path / "silver" / "events" / "_delta_log" / "00000000000000000000.json").write_text("{}")
    (tmp_path / "gold" / "broken" / "_delta_log").mkdir(parents=True)  # a first commit that never finished
    (tmp_path / "gold" / "notes").mkdir(parents=True)  # no _delta_log: not a table
    found = storage.table_folders(str(tmp_path))
    assert [(f.layer, f.name, f.committed) for f in found] == [("gold", "broken", False), ("silver", "events", True)]
    assert found[1].uri == f"{tmp_path}/silver/events"
    assert storage.table_folders(str(tmp_path / "missing")) == []


def test_s3_jars_are_found_or_the_error_says_how_to_get_them(monkeypatch, tmp_path):
    """No JVM started: the factory's jar lookup for an s3a:// lake."""
    from lakecart import spark as spark_factory

    (tmp_path / "hadoop-aws-3.4.2.jar").write_bytes(b"")
    (tmp_path / "s3-2.29.52.jar").write_bytes(b"")
    monkeypatch.setattr(spark_factory, "s3_jars_dir", lambda: tmp_path)
    assert [j.name for j in spark_factory.s3_jars()] == ["hadoop-aws-3.4.2.jar", "s3-2.29.52.jar"]
    with pytest.raises(ConfigError, match="holds no hadoop-aws jar"):
        spark_factory.s3_jars(str(tmp_path / "empty"))
    assert spark_factory.hadoop_version().startswith("3.")


def test_row_counts_come_from_the_log_unless_a_file_has_no_statistics(spark, tmp_path):
    path = str(tmp_path / "t")
    spark.range(5).write.format("delta").save(path)
    assert storage.recorded_rows(storage.file_actions(storage.open_delta(path))) == 5
    assert storage.recorded_rows(storage.file_actions(storage.open_delta(path)).slice(0, 0)) == 0
    key = "spark.databricks.delta.stats.collect"
    spark.conf.set(key, "false")  # a writer that records no statistics for its file
    try:
        spark.range(3).write.format("delta").mode("append").save(path)
    finally:
        spark.conf.unset(key)
    actions = storage.file_actions(storage.open_delta(path))
    assert actions.num_rows >= 2
    assert storage.recorded_rows(actions) is None  # not 5: the caller counts the rows instead
