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
