"""`lakecart airflow`: the configuration it writes and the password it keeps (fast, no Airflow
started), and the Helm values a team starts from for Celery or Kubernetes executors."""

import configparser
import json
import stat
from pathlib import Path

import pytest
import yaml

from lakecart import airflow_ops
from lakecart.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


def read_cfg(path: Path) -> configparser.ConfigParser:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(path)
    return cfg


def test_the_config_serves_our_dags_on_loopback_with_login_and_shared_logs(tmp_path):
    home = tmp_path / "airflow"
    path = airflow_ops.write_airflow_cfg(home, ROOT / "dags", port=18080)
    cfg = read_cfg(path)
    assert cfg["core"]["dags_folder"] == str(ROOT / "dags")
    assert cfg["core"]["load_examples"] == "False"
    assert cfg["core"]["executor"] == "LocalExecutor"
    assert cfg["core"]["auth_manager"].endswith("SimpleAuthManager")
    assert cfg["core"]["simple_auth_manager_users"] == "admin:admin"
    assert cfg["core"]["simple_auth_manager_passwords_file"] == str(home / "passwords.json")
    assert cfg["api"]["host"] == "127.0.0.1" and cfg["api"]["port"] == "18080"
    # Task processes reach the api-server's execution API on the same loopback port.
    assert cfg["core"]["execution_api_server_url"] == "http://127.0.0.1:18080/execution/"
    assert cfg["logging"]["base_log_folder"] == str(home / "logs")
    assert cfg["database"]["sql_alchemy_conn"] == f"sqlite:///{home / 'airflow.db'}"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it holds the secrets


def test_secrets_survive_a_rewrite_and_differ_between_homes(tmp_path):
    first = read_cfg(airflow_ops.write_airflow_cfg(tmp_path / "a", ROOT / "dags", port=1))
    again = read_cfg(airflow_ops.write_airflow_cfg(tmp_path / "a", ROOT / "dags", port=2, sql_alchemy_conn="x://"))
    other = read_cfg(airflow_ops.write_airflow_cfg(tmp_path / "b", ROOT / "dags"))
    for section, key in (("core", "fernet_key"), ("api_auth", "jwt_secret"), ("api", "secret_key")):
        assert first[section][key] == again[section][key], key  # connections stay decryptable
        assert first[section][key] != other[section][key], key
        assert len(first[section][key]) >= 32, key
    assert again["api"]["port"] == "2" and again["database"]["sql_alchemy_conn"] == "x://"


def test_the_password_is_generated_once_kept_private_or_taken_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("LAKECART_AIRFLOW_PASSWORD", raising=False)
    password, path = airflow_ops.ensure_password(tmp_path)
    assert len(password) >= 12
    assert json.loads(path.read_text()) == {"admin": password}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert airflow_ops.ensure_password(tmp_path)[0] == password  # the same on the next `up`
    monkeypatch.setenv("LAKECART_AIRFLOW_PASSWORD", "from-the-vault")
    assert airflow_ops.ensure_password(tmp_path)[0] == "from-the-vault"
    assert json.loads(path.read_text()) == {"admin": "from-the-vault"}


def test_settings_are_checked(monkeypatch, tmp_path):
    monkeypatch.setenv("LAKECART_AIRFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("LAKECART_AIRFLOW_DB", "mysql")
    with pytest.raises(airflow_ops.AirflowOpsError, match="choose sqlite or postgres"):
        airflow_ops.AirflowConfig.from_env()
    monkeypatch.setenv("LAKECART_AIRFLOW_DB", "postgres")
    monkeypatch.setenv("LAKECART_AIRFLOW_PORT", "80x")
    with pytest.raises(airflow_ops.AirflowOpsError, match="not a port"):
        airflow_ops.AirflowConfig.from_env()
    monkeypatch.setenv("LAKECART_AIRFLOW_PORT", "18081")
    cfg = airflow_ops.AirflowConfig.from_env()
    assert (cfg.home, cfg.port, cfg.db, cfg.url) == (tmp_path, 18081, "postgres", "http://127.0.0.1:18081")


def test_down_and_status_without_an_airflow(tmp_path, capsys):
    assert airflow_ops.down(tmp_path) == []
    assert airflow_ops.status(tmp_path)["running"] is False


def test_the_cli_parses_the_airflow_and_runlog_commands():
    args = build_parser().parse_args(["airflow", "up", "--db", "postgres", "--port", "18082"])
    assert (args.action, args.db, args.port) == ("up", "postgres", 18082)
    args = build_parser().parse_args(
        ["runlog", "record", "--dag-id", "d", "--task-id", "t", "--run-id", "r", "--try-number", "2"]
    )
    assert (args.map_index, args.state, args.logical_date) == (-1, "failed", "")


def test_helm_values_run_our_dags_with_a_team_executor():
    values = yaml.safe_load((ROOT / "infra" / "airflow" / "helm-values.yaml").read_text())
    assert values["executor"] in ("CeleryExecutor", "KubernetesExecutor", "CeleryExecutor,KubernetesExecutor")
    assert values["postgresql"]["enabled"] is False and values["data"]["metadataSecretName"]
    assert values["dags"]["gitSync"]["enabled"] is True and values["dags"]["gitSync"]["subPath"] == "dags"
    assert values["config"]["core"]["load_examples"] == "False"
    assert values["logs"]["persistence"]["enabled"] is True  # the api-server reads what workers wrote
    env = {e["name"]: e["value"] for e in values["env"]}
    assert env["LAKECART_PIPELINE_BIN"].endswith("/bin")
    assert values["jwtSecretName"] and values["apiSecretKeySecretName"] and values["fernetKeySecretName"]
