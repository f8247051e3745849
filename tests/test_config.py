"""Configuration (``lakecart.config``): layered, and strict - a key nobody reads is an error that names
it, never a silent fall-back to the defaults (a misspelt lake root would write to ./data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakecart.config import Settings, get_settings
from lakecart.errors import ConfigError

PROFILES = sorted((Path(__file__).resolve().parent.parent / "infra" / "config").glob("*.yaml"))


@pytest.fixture()
def load(monkeypatch):
    """Settings as a command sees them, from a clean LAKECART_* environment."""
    import os

    for name in list(os.environ):
        if name.startswith("LAKECART_"):
            monkeypatch.delenv(name)
    get_settings.cache_clear()
    yield lambda: get_settings()
    get_settings.cache_clear()


def _yaml(tmp_path, monkeypatch, text: str) -> Path:
    path = tmp_path / "lakecart.yaml"
    path.write_text(text)
    monkeypatch.setenv("LAKECART_CONFIG", str(path))
    return path


def test_layers_defaults_then_yaml_then_environment(load, tmp_path, monkeypatch):
    assert load().lake.root == "data" and load().spark.master == "local[2]"
    _yaml(tmp_path, monkeypatch, "lake: {root: /from/yaml}\nspark: {master: 'local[4]'}\n")
    monkeypatch.setenv("LAKECART_LAKE__ROOT", "/from/env")
    get_settings.cache_clear()
    settings = load()
    assert settings.lake.root == "/from/env"  # the variable wins over the file
    assert settings.spark.master == "local[4]"  # the file wins over the default


def test_a_misspelt_yaml_key_is_an_error_naming_it_and_the_file(load, tmp_path, monkeypatch):
    path = _yaml(tmp_path, monkeypatch, "lake:\n  rooot: /mnt/lake\n")
    with pytest.raises(ConfigError) as caught:
        load()
    message = str(caught.value)
    assert "lake.rooot" in message and str(path) in message
    assert "\n" not in message  # one line a person reads, not pydantic's report


def test_an_unknown_top_level_key_is_an_error_and_environment_is_gone(load, tmp_path, monkeypatch):
    assert "environment" not in Settings.model_fields  # it was never read
    _yaml(tmp_path, monkeypatch, "environment: standalone\n")
    with pytest.raises(ConfigError, match="environment"):
        load()


def test_a_misspelt_variable_is_an_error_naming_it(load, monkeypatch):
    monkeypatch.setenv("LAKECART_LAKE__ROOOT", "/mnt/lake")
    with pytest.raises(ConfigError, match="LAKECART_LAKE__ROOOT"):
        load()


def test_an_unknown_section_variable_is_an_error(load, monkeypatch):
    monkeypatch.setenv("LAKECART_LAKES__ROOT", "/mnt/lake")
    with pytest.raises(ConfigError, match="LAKECART_LAKES__ROOT"):
        load()


def test_a_single_underscore_variable_is_an_error_that_shows_the_right_spelling(load, monkeypatch):
    monkeypatch.setenv("LAKECART_LAKE_ROOT", "/mnt/lake")
    with pytest.raises(ConfigError, match="LAKECART_LAKE__ROOT"):
        load()


def test_variables_that_are_not_settings_are_left_alone(load, monkeypatch):
    for name in ("LAKECART_CRASH_AT", "LAKECART_CODE_COMMIT", "LAKECART_PIPELINE_BIN", "LAKECART_VENV_DIR"):
        monkeypatch.setenv(name, "x")
    assert load().lake.root == "data"


def test_a_value_of_the_wrong_type_names_the_key(load, monkeypatch):
    monkeypatch.setenv("LAKECART_SPARK__SHUFFLE_PARTITIONS", "many")
    with pytest.raises(ConfigError, match="spark.shuffle_partitions"):
        load()


def test_malformed_yaml_is_one_line_naming_the_file_and_line(load, tmp_path, monkeypatch):
    path = _yaml(tmp_path, monkeypatch, "lake:\n  root: /mnt/lake\n spark: [\n")
    with pytest.raises(ConfigError) as caught:
        load()
    message = str(caught.value)
    assert str(path) in message and "line 3" in message and "\n" not in message


def test_yaml_that_is_not_a_mapping_is_an_error(load, tmp_path, monkeypatch):
    _yaml(tmp_path, monkeypatch, "- lake\n- spark\n")
    with pytest.raises(ConfigError, match="mapping"):
        load()


def test_a_missing_config_file_is_a_config_error(load, tmp_path, monkeypatch):
    monkeypatch.setenv("LAKECART_CONFIG", str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match="nope.yaml"):
        load()


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_the_shipped_cluster_profiles_load(load, monkeypatch, profile):
    monkeypatch.setenv("LAKECART_CONFIG", str(profile))
    settings = load()
    assert not settings.spark.master.startswith("local")  # a cluster profile points at a cluster
    # The local standalone cluster keeps the lake on this machine's disk; the others use object storage.
    assert settings.lake.root.startswith("s3a://") or profile.name == "spark-standalone-local.yaml"
    # Cluster runs keep the Spark UI on, and the session factory prints its URL.
    assert settings.spark.ui_enabled
