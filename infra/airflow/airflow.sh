#!/usr/bin/env bash
# Airflow 3 on this machine, as a platform team runs it: scheduler (LocalExecutor), api-server (UI and
# REST API v2), dag-processor and triggerer from .venv/airflow, all on 127.0.0.1, authentication on.
#
#   infra/airflow/airflow.sh up                 # SQLite metadata database (default)
#   infra/airflow/airflow.sh up --db postgres   # or LAKECART_AIRFLOW_DB=postgres: PostgreSQL (postgres.sh)
#   infra/airflow/airflow.sh status
#   infra/airflow/airflow.sh down               # stops exactly what `up` started (pid files)
#
# Settings: LAKECART_AIRFLOW_PORT (api-server; default 8080, or a free port when 8080 is taken),
# LAKECART_AIRFLOW_HOME (AIRFLOW_HOME; default <lake root>/airflow), LAKECART_AIRFLOW_PASSWORD (the
# admin password; default: generated once into $AIRFLOW_HOME/passwords.json, mode 0600),
# LAKECART_AIRFLOW_DB (sqlite | postgres), LAKECART_AIRFLOW_BIN (the Airflow environment's bin/).
# The same as `lakecart airflow up|down|status`; the work is done by lakecart/airflow_ops.py.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${LAKECART_VENV_DIR:-$ROOT/.venv}"
PYTHON="${LAKECART_PIPELINE_BIN:-$VENV/pipeline/bin}/python"
export LAKECART_AIRFLOW_BIN="${LAKECART_AIRFLOW_BIN:-$VENV/airflow/bin}"
for need in "$PYTHON" "$LAKECART_AIRFLOW_BIN/airflow"; do
  if [ ! -x "$need" ]; then
    echo "airflow.sh: $need is missing; create the environments with \`make envs\`" >&2
    exit 1
  fi
done
case "${1:-}" in
  up | down | status) ;;
  *)
    echo "usage: infra/airflow/airflow.sh up|down|status [--db sqlite|postgres] [--port N] [--json]" >&2
    exit 2
    ;;
esac
cd "$ROOT"
exec "$PYTHON" -m lakecart.airflow_ops "$@"
