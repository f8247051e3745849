"""Where the lake lives, a local folder or an S3-compatible bucket, and what each reader needs to reach it.

Spark reaches ``s3a://`` through hadoop-aws (:func:`spark_conf`); delta-rs, pyarrow and DuckDB (which
scans the Arrow datasets delta-rs opens) get their options here (:func:`storage_options`,
:func:`arrow_filesystem`, :func:`open_delta`). All of them read the same standard variables of the
job's environment, at call time:

- ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` (and ``AWS_SESSION_TOKEN``): the credentials;
- ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``: an S3-compatible server instead of AWS (path-style
  requests; plain HTTP when the URL says ``http://``);
- ``AWS_REGION`` or ``AWS_DEFAULT_REGION`` (``us-east-1`` when neither is set).

Secrets never go into settings, Spark's configuration (which the UI and event logs show) or logs:
hadoop-aws reads them from the environment of each JVM itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from lakecart.errors import ConfigError

OBJECT_STORE_SCHEMES = frozenset({"s3", "s3a"})
DEFAULT_REGION = "us-east-1"
# delta-rs commits on S3 need one of these (or it refuses to write); the environment may choose.
DELTA_RS_COMMIT_KEYS = ("AWS_CONDITIONAL_PUT", "AWS_S3_ALLOW_UNSAFE_RENAME", "AWS_S3_LOCKING_PROVIDER")


def scheme(uri: str) -> str:
    """The URI's scheme, lower case; ``""`` for a plain path."""
    return urlsplit(uri).scheme.lower() if "://" in uri else ""


def is_object_store(uri: str) -> bool:
    """Whether ``uri`` names an S3 bucket (``s3a://`` for Spark, ``s3://`` for the others)."""
    return scheme(uri) in OBJECT_STORE_SCHEMES


def local_path(uri: str) -> Path:
    """The local folder a ``file://`` URI or a plain path names, for the steps that truly need one (a
    model run's folder, a GX project); a bucket is a ``ConfigError``."""
    if scheme(uri) in ("", "file"):
        return Path(urlsplit(uri).path if "://" in uri else uri)
    raise ConfigError(f"{uri} is not on local disk; this step needs a local folder")


@dataclass(frozen=True)
class S3Endpoint:
    """Where S3 requests go: ``url`` None means AWS itself; ``region`` always has a value."""

    url: str | None
    region: str

    @property
    def allow_http(self) -> bool:
        return self.url is not None and self.url.startswith("http://")

    @property
    def host(self) -> str | None:
        """``host:port`` of a custom endpoint (what pyarrow calls ``endpoint_override``)."""
        return urlsplit(self.url).netloc if self.url else None


def s3_endpoint(environ: Mapping[str, str] | None = None) -> S3Endpoint:
    environ = os.environ if environ is None else environ
    url = environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL") or None
    if url is not None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            name = "AWS_ENDPOINT_URL_S3" if environ.get("AWS_ENDPOINT_URL_S3") else "AWS_ENDPOINT_URL"
            raise ConfigError(f"{name}={url} is not an http:// or https:// URL; e.g. http://127.0.0.1:9000")
        url = url.rstrip("/")
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    return S3Endpoint(url=url, region=region)


def _credentials(environ: Mapping[str, str]) -> dict[str, str]:
    names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
    return {name: environ[name] for name in names if environ.get(name)}


def spark_conf(root: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Spark settings for a lake at ``root``: none for local disk; for a bucket, hadoop-aws's
    endpoint, region and addressing (no secrets: the JVMs read them from their environment)."""
    if not is_object_store(root):
        return {}
    endpoint = s3_endpoint(environ)
    conf = {
        "spark.hadoop.fs.s3a.endpoint.region": endpoint.region,
        # Delta's default for s3a, said out loud: one Spark driver commits to a table at a time. Writers
        # on several clusters need io.delta.storage.S3DynamoDBLogStore (docs/lake.md, Object storage).
        "spark.delta.logStore.s3a.impl": "io.delta.storage.S3SingleDriverLogStore",
    }
    if endpoint.url is not None:
        conf |= {
            "spark.hadoop.fs.s3a.endpoint": endpoint.url,
            # S3-compatible servers serve buckets as paths (host/bucket/key), not as subdomains.
            "spark.hadoop.fs.s3a.path.style.access": "true",
            "spark.hadoop.fs.s3a.connection.ssl.enabled": str(not endpoint.allow_http).lower(),
            # Keys from the environment only: no probing of a cloud's instance metadata next to a
            # private server, and no keys in this configuration.
            "spark.hadoop.fs.s3a.aws.credentials.provider": (
                "software.amazon.awssdk.auth.credentials.EnvironmentVariableCredentialsProvider"
            ),
        }
    return conf


def storage_options(uri: str, environ: Mapping[str, str] | None = None) -> dict[str, str] | None:
    """delta-rs's ``storage_options`` for the table at ``uri``; None on local disk (its default).

    Commits: ``AWS_CONDITIONAL_PUT=etag`` (put-if-absent, which AWS S3, MinIO and moto honour) so two
    delta-rs writers cannot both commit the same version, unless the environment chose otherwise
    (``AWS_S3_LOCKING_PROVIDER=dynamodb``, ``AWS_S3_ALLOW_UNSAFE_RENAME=true``).
    """
    if not is_object_store(uri):
        return None
    environ = os.environ if environ is None else environ
    endpoint = s3_endpoint(environ)
    options = {"AWS_REGION": endpoint.region, **_credentials(environ)}
    if endpoint.url is not None:
        options["AWS_ENDPOINT_URL"] = endpoint.url
        options["AWS_ALLOW_HTTP"] = str(endpoint.allow_http).lower()
    chosen = {key: environ[key] for key in DELTA_RS_COMMIT_KEYS if environ.get(key)}
    options |= chosen or {"AWS_CONDITIONAL_PUT": "etag"}
    if "AWS_S3_LOCKING_PROVIDER" in chosen and environ.get("DELTA_DYNAMO_TABLE_NAME"):
        options["DELTA_DYNAMO_TABLE_NAME"] = environ["DELTA_DYNAMO_TABLE_NAME"]
    return options


def arrow_filesystem(uri: str, environ: Mapping[str, str] | None = None):
    """``(pyarrow filesystem, path on it)`` for ``uri``: the local disk, or S3 with the environment's
    endpoint and credentials (the path is then ``bucket/key``)."""
    import pyarrow.fs as pafs

    if not is_object_store(uri):
        return pafs.LocalFileSystem(), str(local_path(uri).resolve())
    environ = os.environ if environ is None else environ
    endpoint = s3_endpoint(environ)
    keys = _credentials(environ)
    filesystem = pafs.S3FileSystem(
        access_key=keys.get("AWS_ACCESS_KEY_ID"),
        secret_key=keys.get("AWS_SECRET_ACCESS_KEY"),
        session_token=keys.get("AWS_SESSION_TOKEN"),
        region=endpoint.region,
        endpoint_override=endpoint.host,
        scheme="http" if endpoint.allow_http else "https",
        force_virtual_addressing=False,
    )
    parts = urlsplit(uri)
    return filesystem, f"{parts.netloc}{parts.path}".rstrip("/")


def open_delta(uri: str, version: int | None = None):
    """The Delta table at ``uri`` (delta-rs), with the storage options its location needs."""
    from deltalake import DeltaTable

    return DeltaTable(uri, version=version, storage_options=storage_options(uri))


def is_delta(uri: str) -> bool:
    """Whether a Delta table (one commit at least) is at ``uri``."""
    from deltalake import DeltaTable

    return DeltaTable.is_deltatable(uri, storage_options=storage_options(uri))


@dataclass(frozen=True)
class TableFolder:
    """A ``<layer>/<table>`` folder of the lake that holds a ``_delta_log``."""

    layer: str
    name: str
    uri: str
    committed: bool  # False: the log holds no commit yet (a first commit that never finished)


def table_folders(tables_root: str) -> list[TableFolder]:
    """The lake's table folders under ``tables_root`` (local or a bucket), sorted by layer and name."""
    import pyarrow.fs as pafs

    filesystem, base = arrow_filesystem(tables_root)

    def listing(path: str) -> list:
        return filesystem.get_file_info(pafs.FileSelector(path, allow_not_found=True))

    found = []
    for layer in sorted(i.base_name for i in listing(base) if i.type == pafs.FileType.Directory):
        for table in sorted(i.base_name for i in listing(f"{base}/{layer}") if i.type == pafs.FileType.Directory):
            log_dir = f"{base}/{layer}/{table}/_delta_log"
            if filesystem.get_file_info(log_dir).type != pafs.FileType.Directory:
                continue
            log_files = listing(log_dir)
            committed = any(
                i.base_name.endswith(".json") or (".checkpoint" in i.base_name and i.base_name.endswith(".parquet"))
                for i in log_files
            )
            uri = f"{tables_root.rstrip('/')}/{layer}/{table}"
            found.append(TableFolder(layer=layer, name=table, uri=uri, committed=committed))
    return found


def copy_tree(source: str, destination: str) -> None:
    """Copy the folder ``source`` to ``destination``, either of them local or in a bucket (raw files
    made on local disk by ``lakecart generate`` into an object-store lake, for instance)."""
    import pyarrow.fs as pafs

    source_fs, source_path = arrow_filesystem(source)
    destination_fs, destination_path = arrow_filesystem(destination)
    pafs.copy_files(source_path, destination_path, source_filesystem=source_fs, destination_filesystem=destination_fs)
