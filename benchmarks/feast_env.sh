#!/usr/bin/env bash
# Feast's own environment for the benchmarks that compare lakecart with Feast
# (benchmarks/serving_latency.py, benchmarks/pit_join.py): .venv/feast, from PyPI.
#
#   benchmarks/feast_env.sh          # create or update .venv/feast; a no-op when already current
#
# Separate from .venv/pipeline on purpose: Feast pins its own pyarrow, pandas, protobuf, fastapi and
# redis client, which clash with the pipeline's TensorFlow 2.15 / Spark / GX set. Re-running is a
# no-op while this script is unchanged (a stamp file holds its hash, as infra/bootstrap.sh does).
# `pip freeze` of the result is written to .venv/feast/freeze.txt for the record.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV="${LAKECART_VENV_DIR:-$ROOT/.venv}/feast"
# The newest Feast on PyPI that installs on Python 3.11 (2026-12-01); [redis] adds its Redis online store,
# [duckdb] its DuckDB offline store (benchmarks/pit_join.py --sides feast-duckdb).
FEAST_SPEC="feast[redis,duckdb]==0.67.0"
say() { printf '\033[1m[feast_env]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[feast_env] %s\033[0m\n' "$*" >&2; exit 1; }

PYTHON=""
for candidate in python3.11 python3; do
  if command -v "$candidate" >/dev/null 2>&1 &&
     "$candidate" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
    PYTHON="$(command -v "$candidate")"; break
  fi
done
[ -n "$PYTHON" ] || die "Python 3.11 is required (found: $(python3 --version 2>&1 || echo none))."

want="$(sha256sum "$0" | cut -c1-16)"
stamp="$ENV/.lakecart-stamp"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi

say "creating $ENV with $FEAST_SPEC (takes a few minutes the first time)"
started=$SECONDS
[ -x "$ENV/bin/python" ] || "$PYTHON" -m venv "$ENV"
"$ENV/bin/python" -m pip install -q --upgrade pip
"$ENV/bin/python" -m pip install -q "$FEAST_SPEC"
"$ENV/bin/python" -c 'import feast, redis, feast.infra.offline_stores.duckdb; print("feast", feast.__version__)' >/dev/null ||
  die "Feast does not import in $ENV"
"$ENV/bin/python" -m pip freeze >"$ENV/freeze.txt"
echo "$want" >"$stamp"
say "done in $((SECONDS - started)) s: $("$ENV/bin/feast" version 2>/dev/null | tail -1)"
