#!/usr/bin/env bash
# A Redis server for the online store (docs/serving.md), on 127.0.0.1 only, from Debian's packages:
#
#   infra/redis/redis.sh up       # prints the URL to set as LAKECART_SERVING__REDIS_URL
#   infra/redis/redis.sh down     # stops exactly the server `up` started (its pid file)
#   infra/redis/redis.sh status   # exit 3 when not running
#
# REDIS_PORT: the port (default 6390, away from a system Redis on 6379). REDIS_DIR: the state
# folder (default data/redis in the repository): the pid file, the port, the log and the RDB snapshot.
# When redis-server is missing and this runs as root, Debian's `redis-server` package is installed
# with apt-get (it says so); the package's own service is not used.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIR="${REDIS_DIR:-$ROOT/data/redis}"
PIDFILE="$DIR/redis.pid"
say() { echo "redis.sh: $*" >&2; }
die() { say "error: $*"; exit 1; }

ensure_server() {
  command -v redis-server >/dev/null && return
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "no redis-server found: installing Debian's redis-server package with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server >&2 || {
      apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server >&2
    }
  fi
  command -v redis-server >/dev/null || die "no redis-server; install Debian's redis-server package"
}

# The pid `up` recorded, when that process is still a redis-server.
our_pid() {
  [ -s "$PIDFILE" ] || return 1
  local pid
  pid="$(cat "$PIDFILE")"
  [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "redis-server" && echo "$pid"
}

port_free() {
  python3 -c 'import socket,sys; s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null
}

case "${1:-}" in
  up)
    ensure_server
    mkdir -p "$DIR"
    if pid="$(our_pid)"; then
      say "already running (pid $pid)"
      echo "redis://127.0.0.1:$(cat "$DIR/port")/0"
      exit 0
    fi
    port="${REDIS_PORT:-6390}"
    port_free "$port" || die "port $port on 127.0.0.1 is in use (set REDIS_PORT)"
    echo "$port" >"$DIR/port"
    redis-server --bind 127.0.0.1 --port "$port" --protected-mode yes --daemonize yes \
      --pidfile "$PIDFILE" --dir "$DIR" --logfile "$DIR/redis.log" --dbfilename dump.rdb >/dev/null ||
      die "redis-server did not start; see $DIR/redis.log"
    for _ in $(seq 100); do
      [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null || true)" = PONG ] && break
      sleep 0.1
    done
    [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null || true)" = PONG ] ||
      die "redis-server is not answering on 127.0.0.1:$port; see $DIR/redis.log"
    say "Redis $(redis-server --version | awk '{print $3}' | cut -d= -f2) on 127.0.0.1:$port (pid $(cat "$PIDFILE"), state $DIR)"
    echo "redis://127.0.0.1:$port/0"
    ;;
  down)
    if pid="$(our_pid)"; then
      kill "$pid"
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && die "pid $pid did not stop"
      say "stopped (pid $pid)"
    fi
    rm -f "$PIDFILE"
    ;;
  status)
    if pid="$(our_pid)"; then echo "running on 127.0.0.1:$(cat "$DIR/port") (pid $pid)"; else echo "not running"; exit 3; fi
    ;;
  *)
    echo "usage: [REDIS_PORT=6390] [REDIS_DIR=data/redis] infra/redis/redis.sh up|down|status" >&2
    exit 2
    ;;
esac
