#!/usr/bin/env bash
# Create the two environments this project runs in, once; re-running is a no-op while the lock
# files are unchanged. Called by `make demo` and `make test`; safe to call by hand.
#
#   .venv/pipeline  TensorFlow 2.15 + TFRS + Horovod (built here, Gloo/CPU) + Spark/Delta + GX
#   .venv/airflow   Apache Airflow 3.3 only (scheduler side; DAGs import nothing from the pipeline)
#
# Why two: see docs/environments.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LAKECART_VENV_DIR:-$ROOT/.venv}"
DELTA_VERSION="4.4.0"
DELTA_ARTIFACTS=("io.delta:delta-spark_4.1_2.13:${DELTA_VERSION}" "io.delta:delta-storage:${DELTA_VERSION}")
# s3a:// lakes: hadoop-aws of pyspark's Hadoop (hadoop-client-api-3.4.2 in pyspark/jars) and the AWS SDK
# v2 modules it uses (its pom's runtime closure, 12 MB), not the 640 MB SDK bundle it names; Spark ships
# the rest (netty, httpclient, commons-codec, slf4j). Loaded only when the lake is on object storage.
HADOOP_VERSION="3.4.2"
AWS_SDK_VERSION="2.29.52"
AWS_SDK_MODULES=(annotations apache-client arns auth aws-core aws-query-protocol aws-xml-protocol checksums
  checksums-spi crt-core endpoints-spi http-auth http-auth-aws http-auth-aws-eventstream http-auth-spi
  http-client-spi identity-spi json-utils metrics-spi netty-nio-client profiles protocol-core regions retries
  retries-spi s3 s3-transfer-manager sdk-core sts third-party-jackson-core utils)
S3_ARTIFACTS=("org.apache.hadoop:hadoop-aws:${HADOOP_VERSION}" "org.reactivestreams:reactive-streams:1.0.4"
  "software.amazon.eventstream:eventstream:1.0.1" "software.amazon.s3.analyticsaccelerator:analyticsaccelerator-s3:1.2.1")
for module in "${AWS_SDK_MODULES[@]}"; do S3_ARTIFACTS+=("software.amazon.awssdk:${module}:${AWS_SDK_VERSION}"); done
WANT="${1:-all}"   # pipeline | airflow | all

say() { printf '\033[1m[bootstrap]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[bootstrap] %s\033[0m\n' "$*" >&2; exit 1; }

find_python() {
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  return 1
}

check_prerequisites() {
  PYTHON="$(find_python)" || die "Python 3.11 is required (found: $(python3 --version 2>&1 || echo none)). Install it: 'apt-get install python3.11 python3.11-venv' or 'pyenv install 3.11'."
  "$PYTHON" -m venv --help >/dev/null 2>&1 || die "Python's venv module is missing: 'apt-get install python3.11-venv'."
  command -v java >/dev/null 2>&1 || die "Java 17 is required by Spark and was not found: 'apt-get install openjdk-17-jdk-headless'."
  local java_major
  java_major="$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)"
  [ "${java_major:-0}" -ge 17 ] || die "Java 17 or later is required by Spark 4.1 (found Java ${java_major:-unknown}): 'apt-get install openjdk-17-jdk-headless'."
  if [ "$WANT" != airflow ]; then
    command -v g++ >/dev/null 2>&1 || die "A C++ compiler is required to build Horovod: 'apt-get install g++'."
    command -v cmake >/dev/null 2>&1 || die "cmake is required to build Horovod: 'apt-get install cmake'."
  fi
}

lock_hash() { cat "$@" | sha256sum | cut -c1-16; }

fetch_jars() {  # fetch_jars DEST ARTIFACT...: each group:name:version jar from Maven Central into DEST
  local dest="$1" tmp
  shift
  mkdir -p "$dest"
  tmp="$(mktemp -d)"
  for artifact in "$@"; do
    IFS=: read -r group name version <<<"$artifact"
    local file="${group//.//}/${name}/${version}/${name}-${version}.jar"
    # The local Maven repository when it has the jar, else Maven Central (curl: one JVM start per
    # artifact with mvn took 3 minutes for the S3 set), else mvn (its mirrors and proxies).
    cp "$HOME/.m2/repository/$file" "$tmp/" 2>/dev/null ||
      curl -fsSL -o "$tmp/${name}-${version}.jar" "https://repo1.maven.org/maven2/$file" ||
      { command -v mvn >/dev/null 2>&1 && mvn -q dependency:copy -Dartifact="$artifact" -DoutputDirectory="$tmp" >/dev/null 2>&1; } ||
      die "could not fetch $artifact from Maven Central"
  done
  mv "$tmp"/*.jar "$dest/" && rmdir "$tmp"
}

fetch_delta_jars() {
  # Spark could resolve these itself (spark.jars.packages) at every session start; fetching them
  # once makes sessions start faster and work offline afterwards.
  local dest="$VENV/pipeline/share/lakecart/jars"
  fetch_jars "$dest" "${DELTA_ARTIFACTS[@]}"
  say "Delta jars in $dest"
}

fetch_s3_jars() {
  local dest="$VENV/pipeline/share/lakecart/jars-s3" bundled
  bundled="$(ls "$VENV"/pipeline/lib/python3.11/site-packages/pyspark/jars/hadoop-client-api-*.jar 2>/dev/null || true)"
  [[ "$bundled" == *"hadoop-client-api-${HADOOP_VERSION}.jar" ]] ||
    die "pyspark bundles ${bundled##*/}, not Hadoop ${HADOOP_VERSION}: update HADOOP_VERSION and the AWS SDK list (hadoop-aws's pom)"
  fetch_jars "$dest" "${S3_ARTIFACTS[@]}"
  say "hadoop-aws and AWS SDK jars in $dest"
}

build_pipeline() {
  local env="$VENV/pipeline" stamp want
  want="$(lock_hash "$ROOT/requirements/pipeline.lock" "$ROOT/setup.py" "$0")"
  stamp="$env/.lakecart-stamp"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  say "creating the pipeline environment in $env (first run: ~10 minutes, Horovod compiles from source)"
  [ -x "$env/bin/python" ] || "$PYTHON" -m venv "$env"
  "$env/bin/pip" install -q --upgrade pip setuptools wheel
  "$env/bin/pip" install -q -r "$ROOT/requirements/pipeline.lock"
  if ! "$env/bin/python" -c 'import horovod.tensorflow' >/dev/null 2>&1; then
    say "building Horovod 0.28.1 against TensorFlow with Gloo (5 to 8 minutes on 2 cores; cached by pip afterwards)"
    HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 HOROVOD_WITHOUT_PYTORCH=1 \
      HOROVOD_WITHOUT_MXNET=1 "$env/bin/pip" install -q --no-build-isolation horovod==0.28.1
  fi
  "$env/bin/pip" install -q --no-deps -e "$ROOT"
  fetch_delta_jars
  fetch_s3_jars
  say "recording the JVM class-data archive for local Spark sessions (about a minute, once)"
  # An optimisation only (every local Spark start ~6 s faster, BENCHMARKS.md): never fatal.
  "$env/bin/python" -m lakecart.spark >/dev/null || say "could not record the class-data archive; Spark starts slower"
  # Capture first: with pipefail, `horovodrun | grep -q` fails at random when grep exits early (SIGPIPE).
  local build
  build="$("$env/bin/horovodrun" --check-build 2>/dev/null)"
  grep -q '\[X\] TensorFlow' <<<"$build" || die "Horovod was built without TensorFlow support"
  grep -q '\[X\] Gloo' <<<"$build" || die "Horovod was built without Gloo support"
  echo "$want" >"$stamp"
  say "pipeline environment ready"
}

build_airflow() {
  local env="$VENV/airflow" stamp want
  want="$(lock_hash "$ROOT/requirements/airflow.lock" "$ROOT/setup.py" "$0")"
  stamp="$env/.lakecart-stamp"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  say "creating the Airflow environment in $env (first run: ~2 minutes)"
  [ -x "$env/bin/python" ] || "$PYTHON" -m venv "$env"
  "$env/bin/pip" install -q --upgrade pip setuptools wheel
  "$env/bin/pip" install -q -r "$ROOT/requirements/airflow.lock"
  # The package without its dependencies: DAG files import only lakecart.contracts (standard library),
  # the names both environments must agree on (asset URIs, the gate's exit code).
  "$env/bin/pip" install -q --no-deps -e "$ROOT"
  echo "$want" >"$stamp"
  say "airflow environment ready"
}

check_prerequisites
case "$WANT" in
  pipeline) build_pipeline ;;
  airflow) build_airflow ;;
  all) build_pipeline; build_airflow ;;
  *) die "usage: $0 [pipeline|airflow|all]" ;;
esac
