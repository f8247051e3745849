"""Keras building blocks shared by every model: a *tower* turns a dict of named inputs into one
vector. Plain ``tf.keras`` (no Horovod, no TFRS): towers feed retrieval, ranking, churn and demand.

Inputs a tower understands, declared by a :class:`TowerSpec`:
- ``ids``: one string per example (user id, item id, device) -> vocabulary lookup -> embedding;
- ``sequences``: a fixed-length string list per example, padded with ``""`` (the last items a user
  viewed) -> embeddings averaged over the non-padding positions;
- ``numeric``: one float matrix input of width ``n_numeric`` (already scaled, see ``scale_counts``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import tensorflow as tf

from lakecart.training.inputs import CONSTANT_VARIANCE, PAD, TowerSpec


class Tower(tf.keras.Model):
    """Embeds ids and sequences, concatenates them with the numeric features, then runs the
    hidden ReLU layers and (if ``output_dim``) a linear projection.

    One id input and nothing else, no hidden layers, no output_dim: the tower *is* the embedding,
    as in the TFRS basic retrieval tutorial.
    """

    def __init__(self, spec: TowerSpec, name: str | None = None) -> None:
        super().__init__(name=name)
        # An input whose vocabulary is empty is one the data never carries (no device in an order
        # export, no brand in its catalogue): it is left out rather than failing the whole model.
        spec = replace(
            spec,
            ids={key: vocab for key, vocab in spec.ids.items() if len(vocab)},
            sequences={key: vocab for key, vocab in spec.sequences.items() if [v for v in vocab if v != PAD]},
        )
        self.spec = spec
        self.id_layers = {
            key: tf.keras.Sequential(
                [
                    tf.keras.layers.StringLookup(vocabulary=list(vocab), mask_token=None),
                    tf.keras.layers.Embedding(len(vocab) + 1, spec.embedding_dim),
                ],
                name=f"{key}_embedding",
            )
            for key, vocab in spec.ids.items()
        }
        self.sequence_lookups = {
            key: tf.keras.layers.StringLookup(vocabulary=[v for v in vocab if v != PAD], mask_token=PAD)
            for key, vocab in spec.sequences.items()
        }
        self.sequence_embeddings = {
            key: tf.keras.layers.Embedding(len([v for v in vocab if v != PAD]) + 2, spec.embedding_dim, mask_zero=True)
            for key, vocab in spec.sequences.items()
        }
        # Fixed statistics, not batch normalisation: small batches and short runs leave batch-norm's
        # moving averages far from the data, and evaluation then sees differently scaled inputs.
        self.normalize = tf.keras.layers.Identity() if spec.n_numeric else None
        self.informative = None
        if spec.n_numeric and spec.numeric_stats:
            mean, variance = spec.numeric_stats
            informative = [v > CONSTANT_VARIANCE for v in variance]
            self.normalize = tf.keras.layers.Normalization(
                mean=mean, variance=[v if ok else 1.0 for v, ok in zip(variance, informative, strict=True)]
            )
            if not all(informative):
                # A column constant on every training row taught the model nothing; at serving time
                # (a 7-day lag once a week of history exists) it would arrive 1000s of standard
                # deviations out, so it is held at its training value instead.
                self.informative = tf.constant([[1.0 if ok else 0.0 for ok in informative]])
        self.dense = [tf.keras.layers.Dense(units, activation="relu") for units in spec.hidden_layers]
        self.project = tf.keras.layers.Dense(spec.output_dim) if spec.output_dim else None

    def call(self, inputs: Mapping[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        parts = [layer(inputs[key]) for key, layer in self.id_layers.items()]
        for key, lookup in self.sequence_lookups.items():
            indices = lookup(inputs[key])
            vectors = self.sequence_embeddings[key](indices)
            mask = tf.cast(tf.not_equal(indices, 0), vectors.dtype)[:, :, None]
            # Mean over the real positions; an all-padding sequence (a new user) gives zeros, not NaN.
            parts.append(tf.reduce_sum(vectors * mask, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0))
        if self.normalize is not None:
            numeric = self.normalize(tf.cast(inputs[self.spec.numeric], tf.float32))
            parts.append(numeric * self.informative if self.informative is not None else numeric)
        x = parts[0] if len(parts) == 1 else tf.concat(parts, axis=1)
        for layer in self.dense:
            x = layer(x)
        return self.project(x) if self.project is not None else x
