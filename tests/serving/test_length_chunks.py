import numpy as np
import pytest
import tensorflow as tf

from kner.models.heads import Spans
from kner.serving.length_chunks import scores_by_length, spans_by_length

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


def chunks(lengths: list[int], chunk_tokens: int) -> list[tuple[int, int]]:
    """The calls' shapes: sorted lengths, as many rows per call as fit
    `chunk_tokens` positions when padded to the call's longest (one at least)."""
    widths, calls, begin = sorted(lengths), [], 0
    while begin < len(widths):
        end = begin + 1
        while end < len(widths) and (end + 1 - begin) * widths[end] <= chunk_tokens:
            end += 1
        calls.append((end - begin, widths[end - 1]))
        begin = end
    return calls


@pytest.mark.parametrize("chunk_tokens", [1, 6, 10, 14, 34, 35])
def test_rows_come_back_in_order(chunk_tokens):
    calls = []
    got = scores_by_length(score(calls), tf.ragged.constant(ROWS), pad_id=0, chunk_tokens=chunk_tokens, num_outputs=2)
    check(got.numpy(), ROWS)
    one_batch = len(ROWS) * 7 <= chunk_tokens
    assert calls == ([(5, 7)] if one_batch else chunks([len(row) for row in ROWS], chunk_tokens))


def test_chunks_hold_rows_of_similar_length():
    calls = []
    scores_by_length(score(calls), tf.ragged.constant(ROWS), pad_id=0, chunk_tokens=10, num_outputs=2)
    assert calls == [(3, 3), (1, 5), (1, 7)]  # lengths 2,3,3 | 5 | 7: not all padded to 7


@pytest.mark.parametrize("num_rows", [1, 7, 8, 9, 17])
def test_a_request_within_the_budget_runs_once_unsorted_and_more_in_sorted_chunks(num_rows):
    """Up to 8 rows of at most 8 tokens (chunk_tokens=64): one call on the
    rows as they come; more: sorted chunks. The scores are the same either way."""
    rows = [ROWS[i % len(ROWS)][:8] + [1] * (i // len(ROWS)) for i in range(num_rows)]
    calls = []
    got = scores_by_length(score(calls), tf.ragged.constant(rows), pad_id=0, chunk_tokens=64, num_outputs=2)
    check(got.numpy(), rows)
    width = max(len(row) for row in rows)
    if num_rows * width <= 64:
        assert calls == [(num_rows, width)]
    else:
        assert calls == chunks([len(row) for row in rows], 64) and len(calls) > 1


def test_in_a_graph_and_for_an_empty_batch():
    @tf.function(input_signature=[tf.RaggedTensorSpec([None, None], tf.int32)])
    def run(rows):
        return scores_by_length(score([]), rows, pad_id=0, chunk_tokens=6, num_outputs=2)

    check(run(tf.ragged.constant(ROWS)).numpy(), ROWS)
    assert run(tf.ragged.constant([[]], tf.int32)[:0]).shape == (0, 0, 2)


def test_chunk_tokens_must_be_positive():
    with pytest.raises(ValueError, match="chunk_tokens"):
        scores_by_length(score([]), tf.ragged.constant(ROWS), pad_id=0, chunk_tokens=0, num_outputs=2)


def decode(calls: list):
    """Spans [token, position] of every token that is even, scored by the
    token: the same in any chunk."""

    def run(token_ids, padding_mask):
        calls.append(tuple(token_ids.shape))
        index = tf.cast(tf.where(padding_mask & (token_ids % 2 == 0)), tf.int32)
        token = tf.gather_nd(token_ids, index)
        per_row = tf.reduce_sum(tf.cast(padding_mask & (token_ids % 2 == 0), tf.int32), axis=1)
        return Spans(index[:, 0], index[:, 1], index[:, 1], token, tf.cast(token, tf.float32), per_row)

    return run


@pytest.mark.parametrize("chunk_tokens", [1, 6, 14, 35])
def test_spans_of_every_chunk_come_back_by_row(chunk_tokens):
    calls = []
    got = spans_by_length(decode(calls), tf.ragged.constant(ROWS), pad_id=0, chunk_tokens=chunk_tokens)
    found = sorted(zip(*(t.numpy().tolist() for t in (got.row, got.start, got.type, got.score))))
    expected = sorted((r, j, t, float(t)) for r, row in enumerate(ROWS) for j, t in enumerate(row) if t % 2 == 0)
    assert found == expected
    one_batch = len(ROWS) * 7 <= chunk_tokens
    assert calls == ([(5, 7)] if one_batch else chunks([len(row) for row in ROWS], chunk_tokens))


def test_spans_of_no_rows():
    got = spans_by_length(decode([]), tf.ragged.constant([], tf.int32, ragged_rank=1), pad_id=0, chunk_tokens=8)
    assert got.row.shape == (0,) and got.score.dtype == tf.float32
