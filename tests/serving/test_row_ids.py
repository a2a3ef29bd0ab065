import numpy as np
import tensorflow as tf

from kner.serving.row_ids import row_ids


def test_equals_value_rowids_with_empty_rows():
    rng = np.random.default_rng(0)
    for _ in range(20):
        lengths = rng.integers(0, 4, size=rng.integers(0, 7))
        ragged = tf.RaggedTensor.from_row_lengths(tf.zeros([int(lengths.sum())]), lengths)
        expected = ragged.value_rowids().numpy()
        np.testing.assert_array_equal(row_ids(ragged.row_splits).numpy(), expected)


def test_in_a_graph_for_no_rows():
    run = tf.function(row_ids, input_signature=[tf.TensorSpec([None], tf.int64)])
    assert run(tf.constant([0], tf.int64)).shape == (0,)
    assert run(tf.constant([0, 0, 3], tf.int64)).numpy().tolist() == [1, 1, 1]
