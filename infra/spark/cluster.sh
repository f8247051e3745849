#!/usr/bin/env bash
# A local Spark standalone cluster (one master, two workers, all on 127.0.0.1) from the pipeline
# environment's pyspark: `up`, `down` (stops exactly what `up` started), `status` (the master's view).
#
#   infra/spark/cluster.sh up
#   LAKECART_CONFIG=infra/config/spark-standalone-local.yaml lakecart ingest bronze --date 2026-01-01
#   infra/spark/cluster.sh status
#   infra/spark/cluster.sh down
#
# Ports and sizes: SPARK_MASTER_PORT (7077), SPARK_MASTER_WEBUI_PORT (8080), SPARK_WORKER_WEBUI_PORT
# (8081, worker n gets 8081+n), SPARK_WORKER_INSTANCES (2), SPARK_WORKER_CORES (1),
# SPARK_WORKER_MEMORY (2g); state, PIDs and logs in SPARK_CLUSTER_DIR (.spark-cluster).
# The work is done by lakecart/cluster.py (the CLI can call the same functions).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${LAKECART_PIPELINE_BIN:-${LAKECART_VENV_DIR:-$ROOT/.venv}/pipeline/bin}/python"
if [ ! -x "$PYTHON" ]; then
  echo "cluster.sh: no pipeline environment at $PYTHON; create it with \`make envs\`" >&2
  exit 1
fi
case "${1:-}" in
  up | down | status) ;;
  *)
    echo "usage: infra/spark/cluster.sh up|down|status [--json]" >&2
    exit 2
    ;;
esac
export SPARK_CLUSTER_DIR="${SPARK_CLUSTER_DIR:-$ROOT/.spark-cluster}"
cd "$ROOT"
exec "$PYTHON" -m lakecart.cluster "$@"
