"""Two-tower retrieval model (TensorFlow Recommenders). A plain Keras library: no Horovod here.

The query tower and the candidate tower are :class:`~lakecart.training.towers.Tower` s, so the same
class is the TFRS tutorial's basic model (one id embedding per side), its deep variant (hidden
layers) and our e-commerce model (ids, recent-item sequences, activity features; item id,
category path, brand, price).

Loss: in-batch softmax over the candidates of each batch (``tfrs.tasks.Retrieval``). In-batch
negatives are drawn in proportion to popularity, so without a correction the model learns to push
popular items down; inputs may carry ``candidate_probability`` (the chance of the item being a
candidate in a batch) and the task subtracts its log from the logits (the logQ correction).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from lakecart.training.towers import Tower, TowerSpec


class TwoTowerRetrieval(tfrs.Model):
    def __init__(self, query: TowerSpec, candidate: TowerSpec, temperature: float | None = None) -> None:
        super().__init__()
        self.query_model = Tower(query, name="query")
        self.candidate_model = Tower(candidate, name="candidate")
        # Top-k metrics over the whole catalogue are computed in evaluation, not every step.
        self.task = tfrs.tasks.Retrieval(temperature=temperature)

    def compute_loss(self, features: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        return self.task(
            self.query_model(features, training=training),
            self.candidate_model(features, training=training),
            candidate_sampling_probability=features.get("candidate_probability"),
            compute_metrics=not training,
        )


def embed(tower: tf.keras.Model, inputs: dict[str, np.ndarray], batch_size: int = 4096) -> np.ndarray:
    """Run a tower over numpy inputs in batches and return a float32 matrix."""
    dataset = tf.data.Dataset.from_tensor_slices(inputs).batch(batch_size)
    return np.concatenate([tower(batch, training=False).numpy() for batch in dataset], axis=0).astype("float32")


def candidate_probability(item_ids: np.ndarray) -> np.ndarray:
    """Per row: the share of training rows with this row's item, the sampling probability of the
    item as an in-batch candidate (for the logQ correction)."""
    _, inverse, counts = np.unique(np.asarray(item_ids), return_inverse=True, return_counts=True)
    return (counts[inverse] / len(inverse)).astype("float32")


def brute_force_index(query_tower: tf.keras.Model, item_ids: np.ndarray, item_vectors: np.ndarray, k: int):
    """TFRS BruteForce index over the item embeddings: ``index(query_inputs) -> (scores, item ids)``."""
    index = tfrs.layers.factorized_top_k.BruteForce(query_tower, k=k)
    index.index_from_dataset(
        tf.data.Dataset.from_tensor_slices((tf.constant(item_ids.astype(str)), tf.constant(item_vectors))).batch(4096)
    )
    return index
