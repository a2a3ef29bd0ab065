"""The entity outputs of the serving graph, one builder for every head.

A head's decoding gives flat spans (`kner.models.heads.Spans`: row, first and
last labelled unit, type id, score); `entity_outputs` turns them into the dense
tensors a TF Serving signature returns (signatures cannot return ragged
ones), padded per batch, with each entity's text cut from the request's
characters:

- `entity_type`, `entity_text` [B, max_entities] string ("" padding);
- `entity_start`, `entity_end` [B, max_entities] int32, character offsets,
  `end` inclusive (-1 padding);
- `entity_score` [B, max_entities] float32 (0 padding);
- `num_entities` [B] int32.
"""

from __future__ import annotations

import tensorflow as tf

from kner.models.heads import Decoded, Spans
from kner.serving.row_ids import row_ids


def entity_outputs(
    decoded: Decoded,
    chars: tf.RaggedTensor,
    type_names: tf.Tensor,
    unit_start: tf.RaggedTensor | None = None,
    unit_end: tf.RaggedTensor | None = None,
) -> dict[str, tf.Tensor]:
    """Dense entity outputs of `decoded` spans over ragged [B, (chars)]
    UTF-8 characters; `type_names` [types] string. The score is the span's,
    or the mean of `decoded.unit_scores` over its units (tagging heads).

    Spans count labelled units (`kner.data.units`); with `unit_start` and
    `unit_end` (int32 [B, (units)], each unit's `[start, end)` characters)
    they move to character offsets, else units are characters."""
    units = decoded.spans
    spans = units
    if unit_start is not None:
        unit = tf.gather(tf.cast(unit_start.row_starts(), tf.int32), units.row)
        first = tf.gather(unit_start.flat_values, unit + units.start)
        spans = units._replace(start=first, end=tf.gather(unit_end.flat_values, unit + units.end) - 1)
    count = tf.size(spans.start)
    flat_first = tf.gather(tf.cast(chars.row_starts(), tf.int32), spans.row) + spans.start
    covered = tf.ragged.range(flat_first, flat_first + spans.end - spans.start + 1)
    # Per entity over its characters (and units), as tf.strings.reduce_join
    # and tf.reduce_mean of a ragged tensor compute it (the same segment
    # kernels), with the segment ids from `row_ids`.
    segments = row_ids(covered.row_splits)
    text = tf.strings.unsorted_segment_join(tf.gather(chars.flat_values, covered.flat_values), segments, count)
    if units.score is None:
        # The units' positions in the [B, M] unit scores.
        size = units.end - units.start + 1
        at = units.row * tf.shape(decoded.unit_scores)[1] + units.start
        positions = tf.ragged.range(at, at + size)
        if unit_start is not None:  # units are not characters: their own segments
            segments = row_ids(positions.row_splits)
        chosen = tf.gather(tf.reshape(decoded.unit_scores, [-1]), positions.flat_values)
        score = tf.math.unsorted_segment_sum(chosen, segments, count) / tf.cast(size, tf.float32)
    else:
        score = units.score
    return span_outputs(spans, score, type_names, entity_text=text)


def span_outputs(spans: Spans, score: tf.Tensor, type_names: tf.Tensor, **more: tf.Tensor) -> dict[str, tf.Tensor]:
    """`entity_type`, `entity_start`, `entity_end`, `entity_score`,
    `num_entities` of `spans` with their `score` [n], and each of `more`
    (flat [n] values, string ones padded with "")."""
    layout = tf.RaggedTensor.from_row_lengths(spans.start, spans.per_row, validate=False)

    def dense(flat_values, default):
        return layout.with_flat_values(flat_values).to_tensor(default)

    outputs = {
        "entity_type": dense(tf.gather(type_names, spans.type), ""),
        "entity_start": dense(spans.start, -1),
        "entity_end": dense(spans.end, -1),
        "entity_score": dense(score, 0.0),
        "num_entities": spans.per_row,
    }
    return {**outputs, **{name: dense(values, "") for name, values in more.items()}}
