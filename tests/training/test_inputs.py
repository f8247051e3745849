import numpy as np

from lakecart.training.inputs import PAD, pad_sequences, scale_counts, vocabulary


def test_pad_sequences_keeps_newest_first_and_pads():
    out = pad_sequences([["a", "b", "c"], None, np.array(["d"]), float("nan")], 2)
    assert out.tolist() == [["a", "b"], [PAD, PAD], ["d", PAD], [PAD, PAD]]


def test_vocabulary_flattens_lists_and_drops_missing():
    assert vocabulary(["b", None, "a"], [["c", "a"], None, np.array(["d"])]) == ["a", "b", "c", "d"]


def test_scale_counts_is_log1p_and_missing_is_zero():
    out = scale_counts(np.array([[0.0, np.nan, np.e - 1]]))
    assert np.allclose(out, [[0.0, 0.0, 1.0]])


def test_a_tower_ignores_an_input_the_data_never_carries():
    # An order export has no device and its catalogue no brand: their vocabularies are empty. The
    # tower must build and run on what there is (it crashed: "Cannot set an empty vocabulary").
    import tensorflow as tf

    from lakecart.training.inputs import TowerSpec
    from lakecart.training.towers import Tower

    spec = TowerSpec(
        ids={"item_id": ["i1", "i2"], "device": [], "brand": []},
        sequences={"recent": [PAD], "recent_items": ["i1"]},
        embedding_dim=4,
    )
    out = Tower(spec)(
        {
            "item_id": tf.constant(["i1", "i9"]),
            "device": tf.constant(["", ""]),
            "brand": tf.constant(["", ""]),
            "recent": tf.constant([[PAD], [PAD]]),
            "recent_items": tf.constant([["i1"], [PAD]]),
        }
    )
    assert out.shape == (2, 8)  # item id and recent items: 4 + 4
