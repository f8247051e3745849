"""Typed, layered configuration.

Layers, later wins:
1. the defaults below: the embedded local profile (``local[2]`` Spark, Delta under ``./data``);
2. a YAML file named by ``LAKECART_CONFIG`` (``infra/config/*.yaml`` holds the cluster profiles);
3. environment variables ``LAKECART_<SECTION>__<KEY>``, e.g. ``LAKECART_LAKE__ROOT=/mnt/lake``.

Secrets never live here: Spark and storage credentials come from the environment of the job.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from lakecart.errors import ConfigError

ENV_PREFIX = "LAKECART_"
# LAKECART_* variables that are not settings: read by the code or tools that name them.
NOT_SETTINGS = frozenset(
    {"CONFIG", "CRASH_AT", "CODE_COMMIT", "PIPELINE_BIN", "AIRFLOW_BIN", "VENV_DIR", "DAGS_FOLDER"}
    # `lakecart airflow up` (lakecart/airflow_ops.py) and its slow test
    | {"AIRFLOW_HOME", "AIRFLOW_PORT", "AIRFLOW_PASSWORD", "AIRFLOW_DB", "AIRFLOW_PG_PORT", "AIRFLOW_E2E_DAYS"}
    # `lakecart serve`: the optional bearer token (a secret, so never a setting)
    | {"SERVE_TOKEN"}
)


class _Strict(BaseModel):
    # A key nobody reads is a mistake (a misspelt ``lake.root`` would write to the default lake).
    model_config = ConfigDict(extra="forbid")


class SparkSettings(_Strict):
    master: str = "local[2]"
    app_name: str = "lakecart"
    driver_memory: str = "2g"
    shuffle_partitions: int = 4
    ui_enabled: bool = False
    # Local folder of Delta jars fetched by the install step; empty means resolve
    # ``spark.jars.packages`` from Maven (what a cluster image usually does).
    jars_dir: str = ""
    # Local masters only: C1-compiled code and the parallel collector. A local session is one JVM
    # on a few cores, where the optimising compiler's threads compete with the tasks for the same
    # cores; a 20M-row join ran faster without it (BENCHMARKS.md). Cluster JVMs keep the defaults.
    quick_jit: bool = True
    conf: dict[str, str] = Field(default_factory=dict)


class LakeSettings(_Strict):
    """Where data lives. Any URI Spark and delta-rs understand works (file://, s3a://, abfss://)."""

    root: str = "data"
    # The local working folder of the steps that write with local file APIs (GX projects, model runs):
    # they work under it at the same path relative to the root, then copy their files to the lake.
    # Empty: the root itself when it is on local disk, else <tmp>/lakecart-<uid>/<bucket>/<prefix>.
    local_dir: str = ""

    def work_path(self, uri: str) -> Path:
        """The local working copy of the lake location ``uri`` (``storage.working_path``)."""
        from lakecart import storage

        return storage.working_path(uri, self.root, self.local_dir)

    def lake_uri(self, path: Path) -> str | None:
        """The lake location the local working ``path`` stands for; None outside the working folder."""
        from lakecart import storage

        return storage.lake_location(path, self.root, self.local_dir)

    @property
    def raw(self) -> str:
        return f"{self.root}/raw"

    @property
    def tables(self) -> str:
        return f"{self.root}/lake"

    @property
    def models(self) -> str:
        return f"{self.root}/models"

    @property
    def reports(self) -> str:
        return f"{self.root}/reports"


class TrainingSettings(_Strict):
    processes: int = 2
    epochs: int = 10
    global_batch_size: int = 512
    learning_rate: float = 0.1
    embedding_dim: int = 32
    top_k: int = 10
    seed: int = 42
    # horovodrun hosts, e.g. "gpu-1:4,gpu-2:4"; empty means all processes on this host.
    hosts: str = ""
    # The gate: how much better than its best baseline a model must be on its primary metric
    # (absolute, in the metric's units; 0: any better) to be published.
    gate_margin: float = Field(default=0.0, ge=0.0)


class IngestSettings(_Strict):
    """Bounds of the ingest contracts that depend on the shop, not on the format."""

    # Most units of one item on one order line; a line above it is quarantined (invalid_quantity) and
    # the order-lines and events suites hold the staged batch to it. Real bulk orders (1,200 bottles,
    # a wholesale grocery line, fuel in litres) are far above a web shop's few units: set it per shop.
    max_quantity: int = Field(default=100_000, ge=1)


class FeatureSettings(_Strict):
    """How ``features materialize`` runs (docs/feature-store.md)."""

    # Views materialised side by side in one Spark session (threads): one view's driver-side work
    # (planning, Delta log reads and commits) overlaps another's tasks. 1: one after the other.
    parallel_views: int = Field(default=2, ge=1)


class ServingSettings(_Strict):
    """The online store and the HTTP service (docs/serving.md)."""

    # lmdb: embedded, no server (memory-mapped reads, lock-free readers, atomic write transactions);
    # redis: a Redis server (infra/redis/redis.sh runs one on loopback).
    online_store: Literal["lmdb", "redis"] = "lmdb"
    # The LMDB folder; empty: ``<lake root>/online`` (the lake root must then be a local path).
    lmdb_path: str = ""
    redis_url: str = "redis://127.0.0.1:6379/0"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # Most entity ids one request may ask for; more is a 4xx, not a slow answer.
    max_ids: int = Field(default=1000, ge=1)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid")

    spark: SparkSettings = Field(default_factory=SparkSettings)
    lake: LakeSettings = Field(default_factory=LakeSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    features: FeatureSettings = Field(default_factory=FeatureSettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls))


class _YamlSource(PydanticBaseSettingsSource):
    """The YAML layer: the file named by ``LAKECART_CONFIG``, if any."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get("LAKECART_CONFIG")
        if not path:
            return {}
        file = Path(path)
        if not file.is_file():
            raise ConfigError(f"LAKECART_CONFIG points at {path}, which is not a file; fix the path or unset it")
        try:
            data = yaml.safe_load(file.read_text())
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(f"{path}{where}: not valid YAML ({problem}); fix the file") from None
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections (spark:, lake:, training:)")
        return data


def _check_variables(environ: dict[str, str]) -> None:
    """``LAKECART_<SECTION>__<KEY>`` must name a setting; pydantic-settings alone would ignore
    ``LAKECART_LAKES__ROOT`` or ``LAKECART_LAKE_ROOT`` and the job would run on the defaults."""
    sections = {name: field.annotation for name, field in Settings.model_fields.items()}
    for name in sorted(environ):
        if not name.upper().startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX) :]
        if rest.upper() in NOT_SETTINGS:
            continue
        section, sep, key = rest.lower().partition("__")
        if sep and section in sections:
            continue  # the key itself is checked by the section's model (extra="forbid")
        if not sep:
            for known in sections:
                if section.startswith(known + "_"):
                    right = f"{ENV_PREFIX}{known.upper()}__{rest[len(known) + 1 :].upper()}"
                    raise ConfigError(f"unknown variable {name}: section and key are split by two underscores: {right}")
        raise ConfigError(
            f"unknown variable {name}: settings are {ENV_PREFIX}<SECTION>__<KEY> with SECTION one of "
            f"{', '.join(s.upper() for s in sections)}; unset it or fix its name"
        )


def _describe(exc: ValidationError) -> str:
    """pydantic's report as one line: each bad key with where it came from and what is wrong."""
    source = f"LAKECART_CONFIG={os.environ['LAKECART_CONFIG']}" if os.environ.get("LAKECART_CONFIG") else ""
    problems = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"])
        variable = ENV_PREFIX + "__".join(str(part).upper() for part in error["loc"])
        origin = variable if variable in {n.upper() for n in os.environ} else source or "the defaults"
        if error["type"] == "extra_forbidden":
            problems.append(f"unknown key {key} (from {origin})")
        else:
            problems.append(f"{key}: {error['msg']} (from {origin})")
    return "invalid configuration: " + "; ".join(problems) + "; fix or remove it (keys: README, Configuration)"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings from the three layers; a ``ConfigError`` names any key that is unknown or invalid."""
    _check_variables(dict(os.environ))
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
