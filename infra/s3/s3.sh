#!/usr/bin/env bash
# A local S3-compatible server (moto's S3 API server, on 127.0.0.1) for developing against and
# testing an object-store lake: `up` (starts it, creates the bucket, writes an env file to source),
# `down` (stops exactly what `up` started; moto keeps objects in memory, so they go too), `status`.
#
#   infra/s3/s3.sh up
#   source data/s3/env        # AWS_ENDPOINT_URL, generated keys, LAKECART_LAKE__ROOT=s3a://lake
#   lakecart ingest bronze --date 2026-01-01
#   infra/s3/s3.sh down
#
# Settings: S3_DEV_PORT (9900), S3_DEV_BUCKET (lake), S3_DEV_DIR (data/s3, git-ignored); keys from
# AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY when both are set, else generated. Why moto: docs/lake.md.
# The work is done by lakecart/s3dev.py.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${LAKECART_PIPELINE_BIN:-${LAKECART_VENV_DIR:-$ROOT/.venv}/pipeline/bin}/python"
if [ ! -x "$PYTHON" ]; then
  echo "s3.sh: no pipeline environment at $PYTHON; create it with \`make envs\`" >&2
  exit 1
fi
case "${1:-}" in
  up | down | status) ;;
  *)
    echo "usage: infra/s3/s3.sh up|down|status [--json]" >&2
    exit 2
    ;;
esac
export S3_DEV_DIR="${S3_DEV_DIR:-$ROOT/data/s3}"
cd "$ROOT"
exec "$PYTHON" -m lakecart.s3dev "$@"
