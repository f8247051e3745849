# syntax=docker/dockerfile:1.7
# The pipeline image (CPU): Python 3.11 and OpenJDK 17 from Debian, requirements/pipeline.lock, Horovod
# built with Gloo, the Delta and hadoop-aws jars, lakecart and its Spark-on-Kubernetes entry point.
# Spark drivers and executors (infra/k8s/), Airflow tasks and CPU training all run in it.
#
#   docker build -f infra/docker/pipeline.Dockerfile --build-arg CODE_COMMIT="$(git rev-parse HEAD)" \
#     -t registry.example/lakecart-pipeline:0.1.0 .
#
# From the repository root (.dockerignore keeps .venv, data and .git out of the context). Every step
# mirrors infra/bootstrap.sh (same flags and versions; tests/test_reference_configs.py compares them).
# Not built here: these machines have no Docker daemon (docs/deploy.md).

FROM python:3.11-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends g++ cmake curl ca-certificates \
 && rm -rf /var/lib/apt/lists/*
ENV VENV=/opt/lakecart/pipeline
COPY requirements/pipeline.lock /tmp/pipeline.lock
RUN --mount=type=cache,target=/root/.cache/pip \
    python -m venv "$VENV" \
 && "$VENV/bin/pip" install --upgrade pip setuptools wheel \
 && "$VENV/bin/pip" install -r /tmp/pipeline.lock
# Horovod against the installed TensorFlow, Gloo only (no MPI, no GPU): infra/bootstrap.sh's flags.
RUN --mount=type=cache,target=/root/.cache/pip \
    HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 HOROVOD_WITHOUT_PYTORCH=1 \
    HOROVOD_WITHOUT_MXNET=1 "$VENV/bin/pip" install --no-build-isolation horovod==0.28.1 \
 && build="$("$VENV/bin/horovodrun" --check-build)" && echo "$build" \
 && echo "$build" | grep -q '\[X\] TensorFlow' && echo "$build" | grep -q '\[X\] Gloo'
# The jars infra/bootstrap.sh fetches, into the folders lakecart.spark looks in (<venv>/share/lakecart/):
# Delta for every session, hadoop-aws of pyspark's Hadoop and the AWS SDK v2 modules it uses for s3a://.
ARG DELTA_VERSION=4.4.0
ARG HADOOP_VERSION=3.4.2
ARG AWS_SDK_VERSION=2.29.52
ARG AWS_SDK_MODULES="annotations apache-client arns auth aws-core aws-query-protocol aws-xml-protocol checksums \
checksums-spi crt-core endpoints-spi http-auth http-auth-aws http-auth-aws-eventstream http-auth-spi \
http-client-spi identity-spi json-utils metrics-spi netty-nio-client profiles protocol-core regions retries \
retries-spi s3 s3-transfer-manager sdk-core sts third-party-jackson-core utils"
RUN set -eu; \
    test -f "$VENV/lib/python3.11/site-packages/pyspark/jars/hadoop-client-api-${HADOOP_VERSION}.jar" \
      || { echo "pyspark does not bundle Hadoop ${HADOOP_VERSION}: update HADOOP_VERSION and the SDK list" >&2; exit 1; }; \
    fetch() { \
      dest="$1"; shift; mkdir -p "$dest"; \
      for artifact in "$@"; do \
        group="${artifact%%:*}"; rest="${artifact#*:}"; name="${rest%%:*}"; version="${rest#*:}"; \
        curl -fsSL -o "$dest/$name-$version.jar" \
          "https://repo1.maven.org/maven2/$(echo "$group" | tr . /)/$name/$version/$name-$version.jar"; \
      done; \
    }; \
    fetch "$VENV/share/lakecart/jars" "io.delta:delta-spark_4.1_2.13:${DELTA_VERSION}" "io.delta:delta-storage:${DELTA_VERSION}"; \
    sdk=""; for module in $AWS_SDK_MODULES; do sdk="$sdk software.amazon.awssdk:$module:${AWS_SDK_VERSION}"; done; \
    fetch "$VENV/share/lakecart/jars-s3" "org.apache.hadoop:hadoop-aws:${HADOOP_VERSION}" \
      "org.reactivestreams:reactive-streams:1.0.4" "software.amazon.eventstream:eventstream:1.0.1" \
      "software.amazon.s3.analyticsaccelerator:analyticsaccelerator-s3:1.2.1" $sdk

FROM python:3.11-slim-bookworm
# Spark needs a JRE; tini reaps the driver's and executors' children; procps for Spark's scripts.
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless tini procps \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 185 spark \
 && useradd --system --uid 185 --gid spark --create-home --home-dir /home/spark spark
COPY --from=build /opt/lakecart/pipeline /opt/lakecart/pipeline
WORKDIR /opt/lakecart
COPY . /opt/lakecart
RUN /opt/lakecart/pipeline/bin/pip install --no-deps -e /opt/lakecart
# No .git in the image: the commit that Delta commits and run records name comes from the build.
ARG CODE_COMMIT=""
ENV LAKECART_CODE_COMMIT=${CODE_COMMIT} \
    PATH=/opt/lakecart/pipeline/bin:$PATH \
    SPARK_HOME=/opt/lakecart/pipeline/lib/python3.11/site-packages/pyspark \
    PYSPARK_PYTHON=/opt/lakecart/pipeline/bin/python \
    PYSPARK_DRIVER_PYTHON=/opt/lakecart/pipeline/bin/python \
    ARROW_DEFAULT_MEMORY_POOL=system
# Spark's images run as uid 185; the code and the environment stay read-only to it (scratch goes to /tmp).
USER 185
# `driver` and `executor` as Spark on Kubernetes starts its pods; anything else runs as given (lakecart ...).
ENTRYPOINT ["/opt/lakecart/infra/docker/spark-entrypoint.sh"]
CMD ["lakecart", "--help"]
