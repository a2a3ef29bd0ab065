import numpy as np
import pytest
import tensorflow as tf

from kner.serving.length_chunks import scores_by_length

ROWS = [[2, 5, 3], [2, 3], [2, 7, 7, 7, 3], [2, 9, 3], [2, 4, 4, 4, 4, 4, 3]]


def score(calls: list):
    """Per-position scores that depend on the token and its position only,
    and record each call's shape."""

    def run(token_ids, padding_mask):
        calls.append(tuple(token_ids.shape))
        position = tf.cast(tf.range(tf.shape(token_ids)[1]), tf.float32)[None, :, None]
        ids = tf.cast(token_ids, tf.float32)[..., None]
        scores = tf.concat([ids, ids * 10 + position], axis=-1)
        return tf.where(padding_mask[..., None], scores, -1.0)

    return run


def check(got, rows):
    """Each row's scores up to its length (what follows is unspecified)."""
    assert got.shape == (len(rows), max(len(r) for r in rows), 2)
    for i, row in enumerate(rows):
        np.testing.assert_array_equal(got[i, : len(row)], [[t, t * 10 + j] for j, t in enumerate(row)])


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 5, 8])
def test_rows_come_back_in_order(chunk_rows):
    calls = []
    got = scores_by_length(score(calls), tf.ragged.constant(ROWS), pad_id=0, chunk_rows=chunk_rows, num_outputs=2)
    check(got.numpy(), ROWS)
    assert len(calls) == (1 if len(ROWS) <= chunk_rows else -(-len(ROWS) // chunk_rows))


def test_chunks_hold_rows_of_similar_length():
    calls = []
    scores_by_length(score(calls), tf.ragged.constant(ROWS), pad_id=0, chunk_rows=2, num_outputs=2)
    assert calls == [(2, 3), (2, 5), (1, 7)]  # lengths 2,3 | 3,5 | 7: not all padded to 7


@pytest.mark.parametrize("num_rows", [1, 7, 8, 9, 17])
def test_up_to_a_chunk_runs_once_unsorted_and_more_in_sorted_chunks(num_rows):
    """1 and 8 rows (chunk_rows=8): one call on the rows as they come; 9 and
    17: sorted chunks of 8. The scores are the same either way."""
    rows = [ROWS[i % len(ROWS)] + [1] * (i // len(ROWS)) for i in range(num_rows)]
    calls = []
    got = scores_by_length(score(calls), tf.ragged.constant(rows), pad_id=0, chunk_rows=8, num_outputs=2)
    check(got.numpy(), rows)
    widths = sorted(len(row) for row in rows)
    chunks = [widths[begin : begin + 8] for begin in range(0, num_rows, 8)]
    assert calls == [(len(chunk), chunk[-1]) for chunk in chunks]


def test_in_a_graph_and_for_an_empty_batch():
    @tf.function(input_signature=[tf.RaggedTensorSpec([None, None], tf.int32)])
    def run(rows):
        return scores_by_length(score([]), rows, pad_id=0, chunk_rows=2, num_outputs=2)

    check(run(tf.ragged.constant(ROWS)).numpy(), ROWS)
    assert run(tf.ragged.constant([[]], tf.int32)[:0]).shape == (0, 0, 2)


def test_chunk_rows_must_be_positive():
    with pytest.raises(ValueError, match="chunk_rows"):
        scores_by_length(score([]), tf.ragged.constant(ROWS), pad_id=0, chunk_rows=0, num_outputs=2)
