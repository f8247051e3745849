"""Run by ``test_shared_negatives.py`` under ``horovodrun --gloo -np 2`` (not a test module).

Every worker builds the same two-tower model (same seed), takes its half of one fixed global batch
and computes the gradient of its loss. Averaged over the workers (what the distributed optimizer
applies), that must equal the gradient a single process computes on the whole batch. Rank 0 writes
the largest relative difference, with and without shared negatives, to the given JSON file.
"""

from __future__ import annotations

import json
import sys

import numpy as np


def main(out: str) -> None:
    import horovod.tensorflow as hvd
    import tensorflow as tf

    from lakecart.training import distributed
    from lakecart.training.inputs import TowerSpec
    from lakecart.training.retrieval import TwoTowerRetrieval

    worker = distributed.init()
    users, items = [f"u{i}" for i in range(20)], [f"i{i}" for i in range(30)]
    rng = np.random.default_rng(3)
    batch = {
        "user_id": np.array(rng.choice(users, 16)),
        "item_id": np.array(rng.choice(items, 16)),
        "candidate_probability": rng.uniform(0.01, 0.2, 16).astype("float32"),
    }
    half = {k: v[worker.rank * 8 : (worker.rank + 1) * 8] for k, v in batch.items()}

    def model():
        tf.keras.utils.set_random_seed(11)
        m = TwoTowerRetrieval(
            TowerSpec(ids={"user_id": users}, embedding_dim=8), TowerSpec(ids={"item_id": items}, embedding_dim=8)
        )
        m.compute_loss({k: tf.constant(v) for k, v in batch.items()})  # build the variables
        return m

    def gradients(m, features):
        with tf.GradientTape() as tape:
            loss = m.compute_loss({k: tf.constant(v) for k, v in features.items()}, training=True)
        return [tf.convert_to_tensor(g) for g in tape.gradient(loss, m.trainable_variables)]

    def averaged(grads, name):
        return [hvd.allreduce(g, op=hvd.Average, name=f"{name}{i}") for i, g in enumerate(grads)]

    reference = gradients(model(), batch)  # one process, the whole batch
    shared = model()
    shared.share_negatives(distributed.gather_own_first, worker.size)
    with_sharing = averaged(gradients(shared, half), "shared")
    without_sharing = averaged(gradients(model(), half), "alone")

    def worst(grads):
        return max(float(tf.norm(g - r) / tf.norm(r)) for g, r in zip(grads, reference, strict=True))

    if worker.is_chief:
        with open(out, "w") as f:
            json.dump({"with_shared_negatives": worst(with_sharing), "without": worst(without_sharing)}, f)


if __name__ == "__main__":
    main(sys.argv[1])
