# syntax=docker/dockerfile:1.7
# The GPU training image: TensorFlow 2.15 on CUDA 12.2 and cuDNN 8.9 (the versions TensorFlow 2.15 was
# built and tested with), Horovod 0.28.1 built with NCCL for allreduce on GPUs (Gloo to launch and
# coordinate, no MPI), the rest of requirements/pipeline.lock and lakecart. One process per GPU:
# training/distributed.py pins each to the GPU of its local rank (infra/gpu/README.md).
#
#   docker build -f infra/docker/gpu-training.Dockerfile --build-arg CODE_COMMIT="$(git rev-parse HEAD)" \
#     -t registry.example/lakecart-gpu-training:0.1.0 .
#   docker run --gpus all registry.example/lakecart-gpu-training:0.1.0 horovodrun --check-build
#
# The devel image, not the runtime one: Horovod compiles against the CUDA toolkit and NCCL's headers
# (libnccl-dev is part of NVIDIA's devel images). TensorFlow uses this image's CUDA libraries, so the
# lock's tensorflow==2.15.1 is installed as is, without the [and-cuda] wheels (a second CUDA copy, and
# a second NCCL next to the one Horovod links). Not built here: no Docker daemon and no GPU on these
# machines (docs/deploy.md).

FROM nvidia/cuda:12.2.2-cudnn8-devel-ubuntu22.04
ENV DEBIAN_FRONTEND=noninteractive
# Python 3.11 from Ubuntu 22.04's own packages (the lock is for 3.11); OpenJDK 17 for commands that
# start Spark (`lakecart train --on-spark`); ssh for horovodrun across hosts.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv python3.11-dev g++ cmake \
      openjdk-17-jre-headless openssh-client ca-certificates \
 && rm -rf /var/lib/apt/lists/*
ENV VENV=/opt/lakecart/pipeline
COPY requirements/pipeline.lock /tmp/pipeline.lock
RUN --mount=type=cache,target=/root/.cache/pip \
    python3.11 -m venv "$VENV" \
 && "$VENV/bin/pip" install --upgrade pip setuptools wheel \
 && "$VENV/bin/pip" install -r /tmp/pipeline.lock
# No GPU while building: link against the CUDA driver's stub, then drop it from the linker cache so the
# real driver the container runtime mounts is used at run time; the build must list NCCL.
RUN --mount=type=cache,target=/root/.cache/pip \
    ldconfig /usr/local/cuda/targets/x86_64-linux/lib/stubs \
 && HOROVOD_GPU_OPERATIONS=NCCL HOROVOD_NCCL_LINK=SHARED HOROVOD_CUDA_HOME=/usr/local/cuda \
    HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 HOROVOD_WITHOUT_PYTORCH=1 \
    HOROVOD_WITHOUT_MXNET=1 "$VENV/bin/pip" install --no-build-isolation horovod==0.28.1 \
 && ldconfig \
 && build="$("$VENV/bin/horovodrun" --check-build)" && echo "$build" \
 && echo "$build" | grep -q '\[X\] TensorFlow' && echo "$build" | grep -q '\[X\] NCCL' \
 && echo "$build" | grep -q '\[X\] Gloo'
WORKDIR /opt/lakecart
COPY . /opt/lakecart
RUN "$VENV/bin/pip" install --no-deps -e /opt/lakecart
ARG CODE_COMMIT=""
ENV LAKECART_CODE_COMMIT=${CODE_COMMIT} \
    PATH=/opt/lakecart/pipeline/bin:$PATH \
    TF_CPP_MIN_LOG_LEVEL=2 \
    NCCL_DEBUG=WARN
CMD ["lakecart", "train", "--help"]
