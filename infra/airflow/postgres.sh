#!/usr/bin/env bash
# A PostgreSQL server for Airflow's metadata database, on 127.0.0.1 only, from Debian's packages:
#
#   PGHOME=<folder> infra/airflow/postgres.sh start    # prints the SQLAlchemy URL Airflow connects with
#   PGHOME=<folder> infra/airflow/postgres.sh stop
#   PGHOME=<folder> infra/airflow/postgres.sh status
#
# `lakecart airflow up --db postgres` (or LAKECART_AIRFLOW_DB=postgres) calls it with
# PGHOME=$AIRFLOW_HOME/postgres: data in $PGHOME/data, its log in $PGHOME/postgres.log, the socket in
# $PGHOME/socket, the port in $PGHOME/port (LAKECART_AIRFLOW_PG_PORT, else 5432 when free, else a
# free one) and the password of the `airflow` role in $PGHOME/password (generated, mode 0600).
# Server binaries: postgres on PATH or /usr/lib/postgresql/<version>/bin; when none is there and this
# runs as root, Debian's `postgresql` package is installed with apt-get (it says so). PostgreSQL
# refuses to run as root: as root, the server runs as the `postgres` user the package creates.
set -euo pipefail
PGHOME="${PGHOME:?set PGHOME to the folder for the server (data, log, socket)}"
say() { echo "postgres.sh: $*" >&2; }
die() { say "error: $*"; exit 1; }

find_bin() {
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
  if [ -n "$dir" ] && [ -x "$dir/postgres" ]; then echo "$dir"; return; fi
  if command -v postgres >/dev/null && command -v initdb >/dev/null; then dirname "$(command -v postgres)"; return; fi
  echo ""
}

PGBIN="$(find_bin)"
if [ -z "$PGBIN" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "no PostgreSQL server binary found: installing Debian's postgresql package with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2 || {
      apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2
    }
    PGBIN="$(find_bin)"
  fi
  [ -n "$PGBIN" ] || die "no PostgreSQL server (postgres, initdb); install Debian's postgresql package"
fi

as_server_user() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

DATA="$PGHOME/data"
SOCKET="$PGHOME/socket"
port_free() {
  python3 -c 'import socket,sys; s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null
}

running() { [ -s "$DATA/postmaster.pid" ] && as_server_user "$PGBIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

case "${1:-}" in
  start)
    mkdir -p "$PGHOME" "$SOCKET"
    if [ "$(id -u)" = 0 ]; then
      id postgres >/dev/null 2>&1 || die "no 'postgres' user to run the server as (Debian's postgresql package creates it)"
      chown postgres "$PGHOME" "$SOCKET"
      runuser -u postgres -- test -w "$PGHOME" ||
        die "the postgres user cannot write $PGHOME (a parent folder is private); choose LAKECART_AIRFLOW_HOME elsewhere"
    fi
    if [ ! -s "$PGHOME/password" ]; then
      (umask 077 && head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$PGHOME/password")
    fi
    if [ ! -s "$PGHOME/port" ]; then
      port="${LAKECART_AIRFLOW_PG_PORT:-}"
      if [ -z "$port" ]; then
        if port_free 5432; then port=5432; else port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"; fi
      fi
      echo "$port" >"$PGHOME/port"
    fi
    port="$(cat "$PGHOME/port")"
    if [ ! -s "$DATA/PG_VERSION" ]; then
      say "initdb $DATA"
      as_server_user "$PGBIN/initdb" -D "$DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 -E UTF8 >/dev/null
    fi
    if ! running; then
      port_free "$port" || die "port $port on 127.0.0.1 is in use (set LAKECART_AIRFLOW_PG_PORT, delete $PGHOME/port)"
      as_server_user "$PGBIN/pg_ctl" -D "$DATA" -l "$PGHOME/postgres.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $SOCKET" start >/dev/null ||
        die "the server did not start; see $PGHOME/postgres.log"
    fi
    password="$(cat "$PGHOME/password")"
    psql_() { as_server_user "$PGBIN/psql" -X -q -h "$SOCKET" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }
    if [ -z "$(psql_ -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'airflow'")" ]; then
      psql_ -c "CREATE ROLE airflow LOGIN PASSWORD '$password'"
    fi
    if [ -z "$(psql_ -tAc "SELECT 1 FROM pg_database WHERE datname = 'airflow'")" ]; then
      psql_ -c "CREATE DATABASE airflow OWNER airflow"
    fi
    say "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (data $DATA)"
    echo "postgresql+psycopg2://airflow:$password@127.0.0.1:$port/airflow"
    ;;
  stop)
    if running; then as_server_user "$PGBIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null; say "stopped"; fi
    ;;
  status)
    if running; then echo "running on 127.0.0.1:$(cat "$PGHOME/port")"; else echo "not running"; exit 3; fi
    ;;
  *)
    echo "usage: PGHOME=<folder> infra/airflow/postgres.sh start|stop|status" >&2
    exit 2
    ;;
esac
