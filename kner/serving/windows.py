"""Overlapping windows over texts longer than the model's input, in core TF ops.

A text of `n` characters is cut into windows of `window` characters (the
model's `max_seq_length - 2`, leaving room for `[CLS]` and `[SEP]`) that start
every `stride` characters; the last window is moved back to end at the text's
end, so every window but the only one of a short text is full. A text of at
most `window` characters is one window: it runs exactly as without windowing.

Each character then takes its tag scores from the one window where it sits
farthest from a window edge: the window maximising `min(left, right)`, where
`left`/`right` count the characters of that window on each side of it (an edge
at the start or end of the text does not count as an edge: no context is
lost there); ties go to the earlier window. With `stride <= window`, every
character gets at least `(window - 1 - stride) // 2` characters of context on
each side that is not a text edge (31 for `max_seq_length=128` and the default
stride `window // 2`). The merged scores are decoded once over the whole text
(CRF Viterbi included), so tags never break at a window seam and entities
crossing a window edge come out whole.

Heads that decode each window on its own (GlobalPointer) follow the same
rule for spans (`keep_window_spans`): each window's spans move to text
offsets, and a span is kept from the one window where it sits farthest from
both window edges, `min(left, right)` with `left` the characters of that
window before its first character and `right` those after its last (text
edges again unbounded; ties to the earlier window). Only that window's
verdict counts, and a span comes out at most once. A span longer than a
window is never found.

Everything here works on batches inside `tf.function` (and eagerly) with
dynamic shapes, so the same plan runs in the Python API and in the exported
SavedModel.

Example:
>>> plan = plan_windows(tf.constant([5, 0, 130]), window=62, stride=31)
>>> plan.text.numpy(), plan.start.numpy(), plan.length.numpy()
(array([0, 1, 2, 2, 2, 2]), array([ 0,  0,  0, 31, 62, 68]), array([ 5,  0, 62, 62, 62, 62]))
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

from kner.models.heads import Spans
from kner.serving.row_ids import row_ids

# Context of a window side that is a text edge: larger than any window.
_UNBOUNDED = 2**30


class WindowPlan(NamedTuple):
    """Windows of a batch of texts, and which window each character reads.

    Window tensors are [num_windows], in text order then start order;
    character tensors are [total_chars], in the order of the flat values of
    a ragged [batch, (chars)] tensor.
    """

    text: tf.Tensor  # window -> index of its text in the batch
    start: tf.Tensor  # window -> its first character in the text
    length: tf.Tensor  # window -> its number of characters
    char_window: tf.Tensor  # character -> the window it takes its scores from
    char_offset: tf.Tensor  # character -> its position in that window
    num_chars: tf.Tensor  # text -> its characters
    first_window: tf.Tensor  # text -> its first window
    count: tf.Tensor  # text -> its windows
    overflow: tf.Tensor  # text -> the start of its last window


def default_stride(window: int) -> int:
    """Half a window (at least 1)."""
    return max(window // 2, 1)


def check_window(window: int, stride: int) -> None:
    """Raises ValueError unless `1 <= stride <= window`."""
    if window < 1:
        raise ValueError(f"window must hold at least 1 character, got {window}")
    if not 1 <= stride <= window:
        raise ValueError(f"window_stride must be in [1, {window}] (the window), got {stride}")


def plan_windows(num_chars: tf.Tensor, window: int, stride: int) -> WindowPlan:
    """The windows of texts of `num_chars` [batch] characters.

    Args:
        num_chars: int32 [batch] text lengths, in characters.
        window: characters per window.
        stride: characters between window starts, in `[1, window]`.
    """
    check_window(window, stride)
    num_chars = tf.cast(num_chars, tf.int32)
    overflow = tf.maximum(num_chars - window, 0)  # the last window's start
    count = 1 + (overflow + stride - 1) // stride
    first_window = tf.cumsum(count, exclusive=True)

    windows = tf.ragged.range(count)
    text = row_ids(windows.row_splits)
    start = tf.minimum(windows.flat_values * stride, tf.gather(overflow, text))
    length = tf.minimum(window, tf.gather(num_chars, text) - start)

    chars = tf.ragged.range(num_chars)
    char_text = row_ids(chars.row_splits)
    position = chars.flat_values

    def best_windows() -> tuple[tf.Tensor, tf.Tensor]:
        chosen, chosen_start = _best_windows(position, position, char_text, num_chars, count, overflow, window, stride)
        return tf.gather(first_window, char_text) + chosen, position - chosen_start

    # A request whose texts each fit one window (most requests) skips the
    # choice: window i is text i's (bench/README.md, "Where a serving call's
    # time goes": 29 fewer ops per call).
    one_each = tf.reduce_all(count == 1)
    char_window, char_offset = tf.cond(one_each, lambda: (char_text, position), best_windows)
    return WindowPlan(
        text=text,
        start=start,
        length=length,
        char_window=char_window,
        char_offset=char_offset,
        num_chars=num_chars,
        first_window=first_window,
        count=count,
        overflow=overflow,
    )


def _best_windows(
    first: tf.Tensor,
    last: tf.Tensor,
    text: tf.Tensor,
    num_chars: tf.Tensor,
    count: tf.Tensor,
    overflow: tf.Tensor,
    window: int,
    stride: int,
) -> tuple[tf.Tensor, tf.Tensor]:
    """For characters (or spans) `first`..`last` [n] of texts `text` [n]:
    the window, counted within its text, where each sits farthest from both
    edges (ties to the earlier), and that window's start."""
    n = tf.gather(num_chars, text)[:, None]
    last_window = tf.gather(count, text)[:, None] - 1
    # The windows holding a character are among these, in ascending order.
    spread = tf.range(-((window + stride - 1) // stride), 2)
    candidate = tf.clip_by_value(first[:, None] // stride + spread[None], 0, last_window)
    cand_start = tf.minimum(candidate * stride, tf.gather(overflow, text)[:, None])
    cand_end = cand_start + tf.minimum(window, n - cand_start)  # exclusive
    left = tf.where(cand_start > 0, first[:, None] - cand_start, _UNBOUNDED)
    right = tf.where(cand_end < n, cand_end - 1 - last[:, None], _UNBOUNDED)
    holds = (cand_start <= first[:, None]) & (last[:, None] < cand_end)
    context = tf.where(holds, tf.minimum(left, right), -1)
    # Unique keys so that ties deterministically go to the earlier window.
    width = tf.size(spread)
    key = context * width + (width - 1 - tf.range(width))[None]
    best = tf.argmax(key, axis=1, output_type=tf.int32)
    return tf.gather(candidate, best, batch_dims=1), tf.gather(cand_start, best, batch_dims=1)


def keep_window_spans(spans: Spans, plan: WindowPlan, window: int, stride: int) -> Spans:
    """The spans of windows (`Spans.row`: the window) as spans of their texts
    (`row`: the text, offsets in the text), each kept from its best window
    only (see the module doc), ordered by text, start, end and type."""
    text = tf.gather(plan.text, spans.row)
    offset = tf.gather(plan.start, spans.row)
    first, last = spans.start + offset, spans.end + offset
    best, _ = _best_windows(first, last, text, plan.num_chars, plan.count, plan.overflow, window, stride)
    kept = tf.where(tf.gather(plan.first_window, text) + best == spans.row)[:, 0]
    text, first, last = (tf.gather(t, kept) for t in (text, first, last))
    entity_type, score = tf.gather(spans.type, kept), tf.gather(spans.score, kept)
    # By (end, type), then stably by (text, start): texts and offsets are
    # int32, type ids below 2**16.
    positions = tf.cast(tf.reduce_max(tf.concat([plan.num_chars, [1]], 0)), tf.int64)
    minor = tf.argsort(tf.cast(last, tf.int64) * 65536 + tf.cast(entity_type, tf.int64), stable=True)
    major = tf.gather(tf.cast(text, tf.int64) * positions + tf.cast(first, tf.int64), minor)
    order = tf.gather(minor, tf.argsort(major, stable=True))
    text = tf.gather(text, order)
    per_text = tf.math.unsorted_segment_sum(tf.ones_like(text), text, tf.size(plan.num_chars))
    return Spans(text, *(tf.gather(t, order) for t in (first, last, entity_type, score)), per_text)


def window_tokens(values: tf.RaggedTensor, plan: WindowPlan, cls_id: int, sep_id: int) -> tf.RaggedTensor:
    """The model's input rows: `[CLS]`, the slice of ragged [batch, (chars)]
    int32 `values` under each window, `[SEP]`; ragged [num_windows,
    (length + 2)] int32.

    One flat gather (no ragged concatenation): each row's range of flat
    positions runs from one before its first character to one after its
    last, and those two are pointed at `[CLS]` and `[SEP]` appended to the
    values."""
    offsets = tf.gather(tf.cast(values.row_starts(), tf.int32), plan.text) + plan.start
    rows = tf.ragged.range(offsets - 1, offsets + plan.length + 1)
    splits = tf.cast(rows.row_splits, tf.int32)
    size = tf.size(values.flat_values)
    edges = tf.concat([splits[:-1], splits[1:] - 1], axis=0)[:, None]
    count = tf.size(plan.text)[None]
    markers = tf.concat([tf.fill(count, size), tf.fill(count, size + 1)], axis=0)
    index = tf.tensor_scatter_nd_update(rows.flat_values, edges, markers)
    tokens = tf.gather(tf.concat([values.flat_values, [cls_id, sep_id]], axis=0), index)
    return rows.with_flat_values(tokens)


def merge_windows(window_scores: tf.Tensor, plan: WindowPlan) -> tf.Tensor:
    """Per-character scores [total_chars, ...] taken from [num_windows,
    length, ...] window scores whose position i is the window's character i
    (a head's scores: `kner.models.tagger`)."""
    index = tf.stack([plan.char_window, plan.char_offset], axis=1)
    return tf.gather_nd(window_scores, index)
