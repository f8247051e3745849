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
from typing import Any

import yaml
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


class SparkSettings(BaseModel):
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


class LakeSettings(BaseModel):
    """Where data lives. Any URI Spark and delta-rs understand works (file://, s3a://, abfss://)."""

    root: str = "data"

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


class TrainingSettings(BaseModel):
    processes: int = 2
    epochs: int = 10
    global_batch_size: int = 512
    learning_rate: float = 0.1
    embedding_dim: int = 32
    top_k: int = 10
    seed: int = 42
    # horovodrun hosts, e.g. "gpu-1:4,gpu-2:4"; empty means all processes on this host.
    hosts: str = ""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LAKECART_", env_nested_delimiter="__", extra="ignore")

    environment: str = "local"
    spark: SparkSettings = Field(default_factory=SparkSettings)
    lake: LakeSettings = Field(default_factory=LakeSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)

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
            raise FileNotFoundError(f"LAKECART_CONFIG points at {path}, which is not a file")
        return yaml.safe_load(file.read_text()) or {}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
