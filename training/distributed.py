"""Everything Horovod, in one module. Models and trainers never import Horovod.

The same trainer runs as 1 process, as N processes under ``horovodrun`` (Gloo on CPU, NCCL on GPU
hosts) and inside Spark executors (``horovod.spark.run``): only the launcher differs.
Per worker: init, GPU pinned by local rank, variables broadcast from rank 0, gradients and
metrics averaged across workers, logs and checkpoints written by rank 0 only.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Worker:
    rank: int
    size: int
    local_rank: int

    @property
    def is_chief(self) -> bool:
        return self.rank == 0


def init() -> Worker:
    """Initialise Horovod (works without ``horovodrun`` too: then one worker) and pin a GPU."""
    import horovod.tensorflow.keras as hvd
    import tensorflow as tf

    hvd.init()
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        for gpu in gpus:
            tf.config.experimental.set_memory_growth(gpu, True)
        tf.config.set_visible_devices(gpus[hvd.local_rank() % len(gpus)], "GPU")
    worker = Worker(hvd.rank(), hvd.size(), hvd.local_rank())
    log.info("worker %d/%d (local rank %d), GPUs visible: %d", worker.rank, worker.size, worker.local_rank, len(gpus))
    return worker


def distributed_optimizer(optimizer):
    """Average gradients across workers before they are applied."""
    import horovod.tensorflow.keras as hvd

    return hvd.DistributedOptimizer(optimizer)


def training_callbacks() -> list:
    """Start every worker from rank 0's weights; report epoch metrics averaged over workers."""
    import horovod.tensorflow.keras as hvd

    return [hvd.callbacks.BroadcastGlobalVariablesCallback(0), hvd.callbacks.MetricAverageCallback()]


def min_across_workers(value: int) -> int:
    """The smallest ``value`` over all workers: equal steps per epoch, so no worker waits forever."""
    import horovod.tensorflow as hvd
    import tensorflow as tf

    return int(tf.reduce_min(hvd.allgather(tf.constant([value], dtype=tf.int64), name="min_steps")).numpy())


def horovodrun_command(module: str, args: Sequence[str], processes: int, hosts: str = "") -> list[str]:
    """``horovodrun --gloo`` over ``python -m module args``; ``hosts`` like ``gpu-1:4,gpu-2:4``."""
    horovodrun = shutil.which("horovodrun", path=os.path.dirname(sys.executable)) or "horovodrun"
    return [
        horovodrun,
        "--gloo",
        "-np",
        str(processes),
        "-H",
        hosts or f"localhost:{processes}",
        sys.executable,
        "-m",
        module,
        *args,
    ]


def launch(module: str, args: Sequence[str], processes: int, hosts: str = "") -> int:
    """Run a trainer module on ``processes`` workers and return its exit code."""
    if processes < 1:
        raise ValueError("processes must be >= 1")
    command = (
        [sys.executable, "-m", module, *args]
        if processes == 1 and not hosts
        else horovodrun_command(module, args, processes, hosts)
    )
    log.info("launching: %s", " ".join(command))
    return subprocess.run(command, check=False).returncode
