"""The model over a batch's rows in chunks of similar length, in core TF ops.

A request's texts come in whatever order the client sends them, and one dense
batch pads every row to the longest: on CLUENER dev in file order, batches of
32 hold 31% more token positions than the texts have, and the encoder's cost
grows with positions. Sorting the rows by length inside the graph and running
the model on chunks of neighbours pads each chunk only to its own longest
row, without changing any row's result: padding is masked, so a row's scores
do not depend on its batch mates (up to float rounding of other matmul
shapes).

A chunk is as many sorted rows as fit `chunk_tokens` token positions (rows
times the chunk's padded length; at least one row). Too small a chunk costs
more than its padding saves: each call of the model has a fixed cost, and
thin matmuls use two cores badly. A request that fits `chunk_tokens` as one
dense batch runs as one chunk in its own order, without the sort and the
loop.

Measured on CLUENER dev, batches of 32, two threads (bench/README.md,
"Serving: fused encoder layers, chunks by size, a step-by-step
backtrace"): chunks of 8-16 rows (350-700 positions) were best at 12L/768;
the whole batch as one chunk (~1,800 positions) was best at 4L/256 (1.27x
the sentences/s of chunks of 8) and at 2L/128 (1.45x).

Heads that decode each window on its own (GlobalPointer) run the same chunks
through `spans_by_length`, which collects the spans of every chunk.

Example:
>>> rows = tf.ragged.constant([[2, 5, 3], [2, 3], [2, 7, 7, 7, 3]])
>>> scores = scores_by_length(score, rows, pad_id=0, chunk_tokens=6, num_outputs=5)
>>> scores.shape  # [3, 5, 5]: rows in input order; calls on [2, 3] and [1, 5]
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from kner.models.heads import Spans


def _chunk_inputs(chunk: tf.RaggedTensor, pad_id: int) -> tuple[tf.Tensor, tf.Tensor]:
    """A chunk's rows as `(token_ids, padding_mask)`, padded to its longest."""
    token_ids = chunk.to_tensor(pad_id)
    return token_ids, tf.sequence_mask(chunk.row_lengths(), tf.shape(token_ids)[1])


def _chunk_end(begin: tf.Tensor, sorted_lengths: tf.Tensor, num_rows: tf.Tensor, chunk_tokens: int) -> tf.Tensor:
    """One past the last sorted row of the chunk that starts at `begin`:
    rows begin..begin+k-1 pad to the k-th one's length (ascending), so the
    sizes grow with k; count those within the budget (at least one)."""
    sizes = tf.range(1, num_rows - begin + 1) * sorted_lengths[begin:]
    return begin + tf.maximum(1, tf.reduce_sum(tf.cast(sizes <= chunk_tokens, tf.int32)))


def _check(chunk_tokens: int) -> None:
    if chunk_tokens < 1:
        raise ValueError(f"chunk_tokens must be at least 1, got {chunk_tokens}")


def scores_by_length(
    score: Callable[[tf.Tensor, tf.Tensor], tf.Tensor],
    rows: tf.RaggedTensor,
    pad_id: int,
    chunk_tokens: int,
    num_outputs: int,
) -> tf.Tensor:
    """`score` run on the rows of `rows` sorted by length, in chunks of at most
    `chunk_tokens` token positions.

    Args:
        score: `(token_ids [n, L] int32, padding_mask [n, L] bool)` -> scores
            [n, L', num_outputs] (cast to float32 here), L' <= L.
        rows: ragged [num_rows, (length)] int32 token ids.
        pad_id: the id that pads a chunk's shorter rows.
        chunk_tokens: token positions (rows x padded length) per call of
            `score`, at least 1; a longer row is a chunk of its own.
        num_outputs: the last dimension of `score`'s result.

    Returns:
        float32 [num_rows, max length, num_outputs], in the order of `rows`.
        What follows a row's scores is unspecified (the model's scores of
        its chunk's padding, then zeros).
    """
    _check(chunk_tokens)
    lengths = tf.cast(rows.row_lengths(), tf.int32)
    num_rows = tf.shape(lengths)[0]
    width = tf.reduce_max(tf.concat([lengths, [0]], axis=0))

    def chunk_scores(chunk: tf.RaggedTensor) -> tf.Tensor:
        return tf.cast(score(*_chunk_inputs(chunk, pad_id)), tf.float32)

    def by_length() -> tf.Tensor:
        order = tf.argsort(lengths, stable=True)
        sorted_rows = tf.gather(rows, order)
        sorted_lengths = tf.gather(lengths, order)
        output = tf.zeros([num_rows, width, num_outputs], tf.float32)

        def body(begin: tf.Tensor, output: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            end = _chunk_end(begin, sorted_lengths, num_rows, chunk_tokens)
            scores = chunk_scores(sorted_rows[begin:end])
            scores = tf.pad(scores, [[0, 0], [0, width - tf.shape(scores)[1]], [0, 0]])
            return end, tf.tensor_scatter_nd_update(output, order[begin:end, None], scores)

        _, output = tf.while_loop(
            lambda begin, _: begin < num_rows,
            body,
            [tf.constant(0), output],
            shape_invariants=[tf.TensorShape([]), tf.TensorShape([None, None, num_outputs])],
        )
        return output

    # A request within the budget is one chunk as it is: no sort, no loop
    # (their executor cost is most of a short request's fixed cost).
    fits = (num_rows > 0) & (num_rows * width <= chunk_tokens)
    return tf.cond(fits, lambda: chunk_scores(rows), by_length)


def spans_by_length(
    decode: Callable[[tf.Tensor, tf.Tensor], Spans],
    rows: tf.RaggedTensor,
    pad_id: int,
    chunk_tokens: int,
) -> Spans:
    """`decode` run on the rows of `rows` in chunks as `scores_by_length`
    runs `score`, for heads that decode each window on its own: the spans
    of every row, `Spans.row` indexing `rows` (`per_row` is not set: zeros).

    Args:
        decode: `(token_ids [n, L] int32, padding_mask [n, L] bool)` ->
            `Spans` of those n rows (`row` in 0..n-1, ascending).
    """
    _check(chunk_tokens)
    lengths = tf.cast(rows.row_lengths(), tf.int32)
    num_rows = tf.shape(lengths)[0]
    width = tf.reduce_max(tf.concat([lengths, [0]], axis=0))

    def fields(spans: Spans) -> list[tf.Tensor]:
        return [spans.row, spans.start, spans.end, spans.type, spans.score]

    def by_length() -> list[tf.Tensor]:
        order = tf.argsort(lengths, stable=True)
        sorted_rows = tf.gather(rows, order)
        sorted_lengths = tf.gather(lengths, order)
        # Each array starts with an empty element: it concatenates even when no chunk ran.
        arrays = [
            tf.TensorArray(t, 1, dynamic_size=True, infer_shape=False).write(0, tf.zeros([0], t)) for t in _DTYPES
        ]

        def body(begin: tf.Tensor, step: tf.Tensor, *arrays: tf.TensorArray):
            end = _chunk_end(begin, sorted_lengths, num_rows, chunk_tokens)
            found = fields(decode(*_chunk_inputs(sorted_rows[begin:end], pad_id)))
            found[0] = tf.gather(order[begin:end], found[0])
            return (end, step + 1, *(array.write(step, value) for array, value in zip(arrays, found)))

        _, _, *arrays = tf.while_loop(
            lambda begin, *_: begin < num_rows, body, [tf.constant(0), tf.constant(1), *arrays]
        )
        return [array.concat() for array in arrays]

    fits = (num_rows > 0) & (num_rows * width <= chunk_tokens)
    row, start, end, entity_type, score = tf.cond(fits, lambda: fields(decode(*_chunk_inputs(rows, pad_id))), by_length)
    return Spans(row, start, end, entity_type, score, tf.zeros([num_rows], tf.int32))


_DTYPES = (tf.int32, tf.int32, tf.int32, tf.int32, tf.float32)
