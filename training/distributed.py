"""Everything Horovod, in one module. Models and trainers never import Horovod.

The same trainer runs as 1 process, as N processes under ``horovodrun`` (Gloo on CPU, NCCL on GPU
hosts) and inside Spark executors (``horovod.spark.run``, ``lakecart train --on-spark``): only the
launcher differs.
Per worker: init, GPU pinned by local rank (the batch is *global*, fixed whatever the worker
count, so the learning rate is not rescaled), variables broadcast from rank 0, gradients and
metrics averaged across workers, TensorBoard logs and checkpoints written by rank 0 only, resume
from the last checkpoint.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from lakecart.config import get_settings

log = logging.getLogger(__name__)

# Lines every TensorFlow 2.15 process prints on import, GPU or not, at ERROR level (its CUDA plugins
# register twice: tensorflow/tensorflow#62075), and the TensorRT probe's warning: harmless, and they
# read as errors at the top of every training log. The launcher drops them from the workers' output.
HARMLESS_OUTPUT = re.compile(r"Unable to register cu(DNN|FFT|BLAS) factory|TF-TRT Warning: Could not find TensorRT")


class _FirstBatchIsNotASlowCallback(logging.Filter):
    """Keras averages the callbacks' time over the first few batches and warns when it exceeds the
    batch time. Here that average is the first batch's one-off work (Horovod's broadcast of the initial
    variables, TensorBoard's writer): measured on 1 and on 2 workers, ``on_train_batch_end`` takes
    0.12-0.31 s on batch 0 and 0.2-0.6 ms on every later one, so the warning blamed every run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "is slow compared to the batch time" not in record.getMessage()


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
    logging.getLogger("tensorflow").addFilter(_FirstBatchIsNotASlowCallback())
    log.info("worker %d/%d (local rank %d), GPUs visible: %d", worker.rank, worker.size, worker.local_rank, len(gpus))
    return worker


def distributed_optimizer(optimizer):
    """Average gradients across workers before they are applied.

    Horovod's Keras wrapper averages inside ``minimize``/``get_gradients``; TFRS models (and any
    custom ``train_step``) compute gradients with their own tape and call ``apply_gradients``
    directly, which that wrapper leaves un-averaged on TensorFlow >= 2.4: every worker would then
    train its own model on its own shard. So the averaging is done in ``apply_gradients`` itself.
    """
    import horovod.tensorflow.keras as hvd

    wrapped = hvd.DistributedOptimizer(optimizer)
    apply_local = wrapped.apply_gradients

    def apply_averaged(grads_and_vars, *args, **kwargs):
        grads_and_vars = [(g, v) for g, v in grads_and_vars if g is not None]
        variables = [v for _, v in grads_and_vars]
        averaged = wrapped._allreduce([g for g, _ in grads_and_vars], variables)
        return apply_local(list(zip(averaged, variables, strict=True)), *args, **kwargs)

    wrapped.apply_gradients = apply_averaged
    return wrapped


def gather_own_first(tensor):
    """Every worker's rows of ``tensor`` (batch sizes may differ), this worker's rows first.
    Differentiable: each worker gets, for its own rows, the *sum* of all workers' upstream gradients
    (the gradient of the summed loss). Horovod's allgather gradient averages them instead, hence the
    rescaling. A collective: all workers must call it the same number of times."""
    import horovod.tensorflow as hvd
    import tensorflow as tf

    workers = hvd.size()

    @tf.custom_gradient
    def summed_gradient(x):
        return tf.identity(x), lambda upstream: upstream * workers

    gathered = hvd.allgather(summed_gradient(tensor))
    sizes = hvd.allgather(tf.shape(tensor)[:1])
    own = tf.shape(tensor)[0]
    offset = tf.reduce_sum(sizes[: hvd.rank()])
    return tf.concat([gathered[offset : offset + own], gathered[:offset], gathered[offset + own :]], axis=0)


def training_callbacks(worker: Worker, run_dir: Path, checkpoint: bool = True, patience: int | None = None) -> list:
    """Every worker starts from rank 0's weights and sees epoch metrics averaged over workers;
    rank 0 alone writes TensorBoard logs and a checkpoint after each epoch (``resume_epoch``).

    ``patience``: stop when the validation loss has not improved for that many epochs and keep the
    best epoch's weights. It sees the *averaged* validation loss, so every worker stops at the same
    epoch with the same weights.
    """
    import horovod.tensorflow.keras as hvd
    import tensorflow as tf

    callbacks = [hvd.callbacks.BroadcastGlobalVariablesCallback(0), hvd.callbacks.MetricAverageCallback()]
    if patience is not None:
        callbacks.append(
            tf.keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
        )
    if worker.is_chief:
        callbacks.append(tf.keras.callbacks.TensorBoard(log_dir=str(run_dir / "tensorboard"), profile_batch=0))
        if checkpoint:
            callbacks.append(_EpochCheckpoint(run_dir / "checkpoints"))
    return callbacks


class _EpochCheckpoint:
    """Weights and optimizer state after every epoch, plus the number of epochs done."""

    def __new__(cls, directory: Path):
        import tensorflow as tf

        class EpochCheckpoint(tf.keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs=None) -> None:
                directory.mkdir(parents=True, exist_ok=True)
                self.model.save_weights(str(directory / "last"))
                (directory / "epochs_done").write_text(str(epoch + 1))

        return EpochCheckpoint()


def resume_epoch(model, run_dir: Path) -> int:
    """Load the last checkpoint of ``run_dir`` into ``model`` (already built) on every worker and
    return the epochs it had done; 0 when there is none. ``run_dir`` must be on storage every
    worker reads (shared disk or object store mount) when the workers span hosts."""
    directory = run_dir / "checkpoints"
    done = directory / "epochs_done"
    if not done.exists():
        return 0
    model.load_weights(str(directory / "last"))
    epochs = int(done.read_text())
    log.info("resuming from the checkpoint after epoch %d", epochs)
    return epochs


def allreduce_mean(values: Sequence[float], name: str) -> list[float]:
    """The element-wise mean of ``values`` over all workers."""
    import horovod.tensorflow as hvd
    import tensorflow as tf

    return hvd.allreduce(tf.constant(list(values), dtype=tf.float64), op=hvd.Average, name=name).numpy().tolist()


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


def _run_module(module: str, args: Sequence[str]) -> int:
    """Inside a Spark task: the worker program, as ``python -m module args`` would run it."""
    import importlib

    return importlib.import_module(module).main(list(args))


def launch_on_spark(module: str, args: Sequence[str], processes: int) -> int:
    """Run the trainer inside ``processes`` Spark tasks (``horovod.spark.run``, Gloo): on a Spark
    cluster the workers are executors, so training needs no host list. Uses the project's one
    SparkSession factory (``LAKECART_SPARK__MASTER`` picks the cluster)."""
    import horovod.spark

    from lakecart.spark import get_spark

    spark = get_spark(app_name="lakecart-train")
    try:
        codes = horovod.spark.run(
            _run_module, args=(module, list(args)), num_proc=processes, use_gloo=True, env=executor_env()
        )
    finally:
        spark.stop()
    return max(codes)


def executor_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ``LAKECART_*`` settings for workers inside Spark executors, which do not inherit the
    driver's environment on a cluster and run in their own folders: a relative lake root or config
    path is made absolute (the driver's), or the workers would read ``data/`` in their work folder."""
    environ = os.environ if environ is None else environ
    env = {k: v for k, v in environ.items() if k.startswith("LAKECART_")}
    root = env.get("LAKECART_LAKE__ROOT", get_settings().lake.root)
    if "://" not in root:
        env["LAKECART_LAKE__ROOT"] = str(Path(root).resolve())
    if env.get("LAKECART_CONFIG"):
        env["LAKECART_CONFIG"] = str(Path(env["LAKECART_CONFIG"]).resolve())
    return env


def launch(module: str, args: Sequence[str], processes: int, hosts: str = "", on_spark: bool = False) -> int:
    """Run a trainer module on ``processes`` workers and return its exit code."""
    if processes < 1:
        raise ValueError("processes must be >= 1")
    if on_spark:
        return launch_on_spark(module, args, processes)
    command = (
        [sys.executable, "-m", module, *args]
        if processes == 1 and not hosts
        else horovodrun_command(module, args, processes, hosts)
    )
    log.info("launching: %s", " ".join(command))
    return run_quietly(command)


def run_quietly(command: Sequence[str]) -> int:
    """Run ``command`` and return its exit code; its standard error is passed on line by line, less
    the lines ``HARMLESS_OUTPUT`` matches (its standard output is passed on untouched)."""
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True, errors="replace", bufsize=1) as process:
        for line in process.stderr:
            if not HARMLESS_OUTPUT.search(line):
                sys.stderr.write(line)
                sys.stderr.flush()
    return process.returncode
