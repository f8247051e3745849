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
import tempfile
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
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
    """The local folder a ``file://`` URI or a plain path names; anything else (a bucket) is a
    ``ConfigError``: a step that works with local file APIs goes through :func:`working_path`."""
    if scheme(uri) in ("", "file"):
        return Path(urlsplit(uri).path if "://" in uri else uri)
    raise ConfigError(
        f"{uri} is not on local disk and this step needs a local folder: map a lake location to its local "
        "working copy with LakeSettings.work_path (setting lake.local_dir)"
    )


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


def file_actions(table):
    """The current files of a Delta table (delta-rs) as an Arrow table, one row per file: ``path``,
    ``num_records``, ``partition.<column>``, ``min.<column>`` and ``max.<column>`` statistics."""
    import pyarrow as pa

    return pa.table(table.get_add_actions(flatten=True))


def recorded_rows(actions) -> int | None:
    """The row count of the files in ``actions`` (``file_actions``) from the log's statistics alone;
    None when a file has none (a writer that records no statistics): count the rows instead."""
    import pyarrow.compute as pc

    if "num_records" not in actions.column_names or actions["num_records"].null_count:
        return None if actions.num_rows else 0
    return int(pc.sum(actions["num_records"]).as_py() or 0)


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
    # The newest commit or checkpoint number in the log; None: no commit yet (a first commit that
    # never finished).
    version: int | None

    @property
    def committed(self) -> bool:
        return self.version is not None


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
            versions = [_log_version(i.base_name) for i in listing(log_dir)]
            version = max((v for v in versions if v is not None), default=None)
            uri = f"{tables_root.rstrip('/')}/{layer}/{table}"
            found.append(TableFolder(layer=layer, name=table, uri=uri, version=version))
    return found


def _log_version(name: str) -> int | None:
    """The version of a ``_delta_log`` file that commits one (``00000000000000000007.json``, a
    ``.checkpoint.parquet``); None for anything else (temporary files, ``_last_checkpoint``)."""
    number = name.split(".", 1)[0]
    if not number.isdigit():
        return None
    return int(number) if name.endswith(".json") or (".checkpoint" in name and name.endswith(".parquet")) else None


def copy_tree(source: str, destination: str) -> None:
    """Copy the folder ``source`` to ``destination``, either of them local or in a bucket (raw files
    made on local disk by ``lakecart generate`` into an object-store lake, for instance)."""
    import pyarrow.fs as pafs

    source_fs, source_path = arrow_filesystem(source)
    destination_fs, destination_path = arrow_filesystem(destination)
    pafs.copy_files(source_path, destination_path, source_filesystem=source_fs, destination_filesystem=destination_fs)


# --- local working copies of lake folders ------------------------------------------------------------
# GX projects and model runs are written with local file APIs. On a bucket lake each such folder has a
# local working copy under the working folder (``lake.local_dir``), at the same path relative to the lake
# root, and is synchronised with the bucket (``sync_tree``): the bucket holds ``models/`` and ``reports/``
# as a local lake does.


def default_local_dir(root: str) -> Path:
    """The working folder when ``lake.local_dir`` is empty: the lake root itself on local disk; for a
    bucket, ``<tmp>/lakecart-<uid>/<bucket>/<prefix>`` (one per user, lake and machine)."""
    if not is_object_store(root):
        return local_path(root)
    parts = urlsplit(root)
    return Path(tempfile.gettempdir()) / f"lakecart-{os.getuid()}" / parts.netloc / parts.path.strip("/")


def _relative(uri: str, root: str) -> PurePosixPath | None:
    """``uri``'s path below ``root`` (``.`` for the root itself); None when it is not inside it."""
    if is_object_store(uri) != is_object_store(root):
        return None
    if is_object_store(uri):
        a, b = urlsplit(uri), urlsplit(root)
        if a.netloc != b.netloc:
            return None
        inside, base = PurePosixPath("/" + a.path.strip("/")), PurePosixPath("/" + b.path.strip("/"))
    else:
        inside, base = PurePosixPath(local_path(uri).resolve()), PurePosixPath(local_path(root).resolve())
    try:
        return inside.relative_to(base)
    except ValueError:
        return None


def working_path(uri: str, root: str, local_dir: str = "") -> Path:
    """The local path that stands for the lake location ``uri`` (lake root ``root``) in steps that need
    local files: its place under the working folder (``local_dir``, else :func:`default_local_dir`);
    a local path outside the lake is itself. A bucket location outside the lake is placed as
    ``<tmp>/lakecart-<uid>/<bucket>/<key>`` unless ``local_dir`` is set, then it is a ``ConfigError``."""
    base = local_path(local_dir) if local_dir else default_local_dir(root)
    relative = _relative(uri, root)
    if relative is not None:
        return base / relative
    if not is_object_store(uri):
        return local_path(uri)
    if not local_dir:
        parts = urlsplit(uri)
        return Path(tempfile.gettempdir()) / f"lakecart-{os.getuid()}" / parts.netloc / parts.path.strip("/")
    raise ConfigError(f"{uri} is outside the lake root {root}: no local working copy stands for it")


def lake_location(path: Path, root: str, local_dir: str = "") -> str | None:
    """The lake location the local working ``path`` stands for (what :func:`working_path` maps to
    ``path``); None when ``path`` is outside the working folder. On a local lake whose working folder
    is the root, the absolute ``path`` itself."""
    base = (local_path(local_dir) if local_dir else default_local_dir(root)).resolve()
    try:
        relative = PurePosixPath(path.resolve().relative_to(base))
    except ValueError:
        return None
    if is_object_store(root):
        return root.rstrip("/") if relative == PurePosixPath(".") else f"{root.rstrip('/')}/{relative}"
    return str(local_path(root).resolve() / relative)


def read_text(uri: str) -> str | None:
    """The text of the file at ``uri`` (local or in a bucket); None when there is none."""
    import pyarrow.fs as pafs

    filesystem, path = arrow_filesystem(uri)
    if filesystem.get_file_info(path).type != pafs.FileType.File:
        return None
    with filesystem.open_input_stream(path) as stream:
        return stream.read().decode()


def write_text(uri: str, text: str) -> None:
    """Replace the file at ``uri`` (local or in a bucket) by ``text``, at once: a reader sees the old
    text or the new one (a local file is renamed into place; an S3 PUT is atomic)."""
    if not is_object_store(uri):
        path = local_path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        partial.write_text(text)
        partial.replace(path)
        return
    filesystem, path = arrow_filesystem(uri)
    with filesystem.open_output_stream(path) as stream:
        stream.write(text.encode())


def sync_tree(source: str, destination: str) -> list[str]:
    """Make ``destination`` hold every file of ``source`` (a folder or one file, local or in a
    bucket): copy each file the destination lacks or holds with another size or modification time.
    Both copies of a copied file then carry the same modification time (a local file takes the
    bucket's), so the next sync either way copies only what changed since. Files only in the
    destination stay. Returns the copied files' paths relative to ``source`` (``""`` for a single
    file); nothing when both name the same local folder. A missing ``source`` is a FileNotFoundError."""
    import pyarrow.fs as pafs

    source_fs, source_path = arrow_filesystem(source)
    destination_fs, destination_path = arrow_filesystem(destination)
    if source_fs.get_file_info(source_path).type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"{source} does not exist")
    source_local, destination_local = not is_object_store(source), not is_object_store(destination)
    if source_local and destination_local and source_path == destination_path:
        return []

    def files(filesystem, base: str) -> dict[str, pafs.FileInfo]:
        info = filesystem.get_file_info(base)
        if info.type == pafs.FileType.File:
            return {"": info}
        if info.type != pafs.FileType.Directory:
            return {}
        listed = filesystem.get_file_info(pafs.FileSelector(base, recursive=True))
        return {i.path[len(base) :].lstrip("/"): i for i in listed if i.type == pafs.FileType.File}

    present = files(destination_fs, destination_path)
    wanted = [
        (name, info)
        for name, info in sorted(files(source_fs, source_path).items())
        if name not in present or (present[name].size, present[name].mtime_ns) != (info.size, info.mtime_ns)
    ]

    def copy(item: tuple[str, pafs.FileInfo]) -> str:
        name, info = item
        target = f"{destination_path}/{name}" if name else destination_path
        if destination_local:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        with source_fs.open_input_stream(info.path) as reader, destination_fs.open_output_stream(target) as writer:
            while chunk := reader.read(8 << 20):
                writer.write(chunk)
        if destination_local:
            os.utime(target, ns=(info.mtime_ns, info.mtime_ns))
        elif source_local:
            stamp = destination_fs.get_file_info(target).mtime_ns
            os.utime(info.path, ns=(stamp, stamp))
        return name

    with ThreadPoolExecutor(max_workers=8) as pool:  # a bucket's requests are latency-bound
        return list(pool.map(copy, wanted))
