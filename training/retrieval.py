"""Two-tower retrieval model (TensorFlow Recommenders). A plain Keras library: no Horovod here.

The query tower and the candidate tower are :class:`~lakecart.training.towers.Tower` s, so the same
class is the TFRS tutorial's basic model (one id embedding per side), its deep variant (hidden
layers) and our e-commerce model (ids, recent-item sequences, activity features; item id,
category path, brand, price).

Loss: in-batch softmax over the candidates of each batch (``tfrs.tasks.Retrieval``). In-batch
negatives are drawn in proportion to popularity, so without a correction the model learns to push
popular items down; inputs may carry ``candidate_probability`` (the chance of the item being a
candidate in a batch) and the task subtracts its log from the logits (the logQ correction).

Across workers, each worker's batch is only a slice of the global batch, so its in-batch softmax sees
a fraction of the negatives of a one-process run. :meth:`TwoTowerRetrieval.share_negatives` takes a
*gather* function (from the distribution layer, not imported here) that collects every worker's
candidate rows, this worker's first, so each query is scored against the whole global batch; the loss
is scaled by the number of workers so that averaged gradients equal the one-process gradient of the
summed loss.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from lakecart.training.inputs import TowerSpec
from lakecart.training.model import Model
from lakecart.training.towers import Tower

Gather = Callable[[tf.Tensor], tf.Tensor]


class TwoTowerRetrieval(Model):
    def __init__(self, query: TowerSpec, candidate: TowerSpec, temperature: float | None = None) -> None:
        super().__init__()
        self.query_model = Tower(query, name="query")
        self.candidate_model = Tower(candidate, name="candidate")
        # Top-k metrics over the whole catalogue are computed in evaluation, not every step.
        self.task = tfrs.tasks.Retrieval(temperature=temperature)
        self._gather: Gather | None = None
        self._loss_scale = 1.0

    def share_negatives(self, gather: Gather, workers: int) -> None:
        """Score each query against the candidates of all workers' batches (see the module doc).
        ``gather(t)`` must return every worker's rows of ``t``, this worker's first, and be
        differentiable; it is a collective, so every worker must run the same number of steps."""
        self._gather = gather
        self._loss_scale = float(workers)

    def compute_loss(self, features: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        candidates = self.candidate_model(features, training=training)
        probability = features.get("candidate_probability")
        if self._gather is not None:
            # This worker's candidates stay first, so each query's positive stays on the diagonal.
            candidates = self._gather(candidates)
            probability = None if probability is None else self._gather(probability)
        loss = self.task(
            self.query_model(features, training=training),
            candidates,
            candidate_sampling_probability=probability,
            compute_metrics=not training,
        )
        return self._loss_scale * loss


def embed(tower: tf.keras.Model, inputs: dict[str, np.ndarray], batch_size: int = 4096) -> np.ndarray:
    """Run a tower over numpy inputs in batches and return a float32 matrix."""
    dataset = tf.data.Dataset.from_tensor_slices(inputs).batch(batch_size)
    return np.concatenate([tower(batch, training=False).numpy() for batch in dataset], axis=0).astype("float32")


def brute_force_index(query_tower: tf.keras.Model, item_ids: np.ndarray, item_vectors: np.ndarray, k: int):
    """TFRS BruteForce index over the item embeddings: ``index(query_inputs) -> (scores, item ids)``."""
    index = tfrs.layers.factorized_top_k.BruteForce(query_tower, k=k)
    index.index_from_dataset(
        tf.data.Dataset.from_tensor_slices((tf.constant(item_ids.astype(str)), tf.constant(item_vectors))).batch(4096)
    )
    return index
