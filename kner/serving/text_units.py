"""Where a batch's labelled units sit among its tokens, for the windows of
the serving graph.

Windows (`kner.serving.windows`) cut texts by tokens; heads score labelled
units (`kner.data.units`: every token, or the first sub-token of each word).
`TextUnits` moves positions between the two, in core TF ops:

- `token`: the flat token index of every unit (per-position heads take the
  merged scores of these tokens);
- `window_tokens`: spans a window's head found over the window's units
  (0 = its first unit) -> window token positions, which
  `keep_window_spans` compares across windows;
- `text_units`: spans over text token positions (each at a unit's token)
  -> unit indices of the text, which the head's decoding and the entity
  outputs read.

With one unit per token every mapping is the identity.

Example:
>>> units = TextUnits.of(is_unit, *unit_offsets(tokens, is_unit))  # is_unit: bool [batch, (tokens)]
>>> units.count                          # [batch] units per text
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

from kner.models.heads import Spans
from kner.serving.windows import WindowPlan


class TextUnits(NamedTuple):
    token: tf.Tensor  # [total units] int32: flat token index of each unit
    row_splits: tf.Tensor  # [batch + 1] int64: units of each text
    count: tf.Tensor  # [batch] int32: units per text
    mark: tf.RaggedTensor  # [batch, (tokens)] int32: 1 on a unit's token
    before: tf.Tensor  # [total tokens + 1] int32: units before each flat token
    token_starts: tf.Tensor  # [batch] int32: flat index of each text's first token
    start: tf.RaggedTensor  # [batch, (units)] int32: each unit's first character
    end: tf.RaggedTensor  # [batch, (units)] int32: one past its last

    @classmethod
    def of(cls, is_unit: tf.RaggedTensor, start: tf.RaggedTensor, end: tf.RaggedTensor) -> TextUnits:
        """The units of a bool [batch, (tokens)] unit mask, with their
        characters (`kner.data.units.unit_offsets`)."""
        flat = tf.cast(is_unit.flat_values, tf.int32)
        counts = tf.reduce_sum(tf.cast(is_unit, tf.int64), axis=1)
        return cls(
            token=tf.cast(tf.where(is_unit.flat_values)[:, 0], tf.int32),
            row_splits=tf.concat([[0], tf.cumsum(counts)], 0),
            count=tf.cast(counts, tf.int32),
            mark=is_unit.with_flat_values(flat),
            before=tf.concat([[0], tf.cumsum(flat)], 0),
            token_starts=tf.cast(is_unit.row_starts(), tf.int32),
            start=start,
            end=end,
        )

    def window_tokens(self, spans: Spans, plan: WindowPlan) -> Spans:
        """Spans of windows (`row`: the window) over each window's units ->
        over its token positions."""
        window_first = tf.gather(self.token_starts, tf.gather(plan.text, spans.row)) + tf.gather(plan.start, spans.row)
        base = tf.gather(self.before, window_first)

        def position(unit: tf.Tensor) -> tf.Tensor:
            return tf.gather(self.token, base + unit) - window_first

        return spans._replace(start=position(spans.start), end=position(spans.end))

    def text_units(self, spans: Spans) -> Spans:
        """Spans of texts (`row`: the text) over token positions -> over the
        text's units."""
        first = tf.gather(self.token_starts, spans.row)
        base = tf.gather(self.before, first)

        def unit(position: tf.Tensor) -> tf.Tensor:
            return tf.gather(self.before, first + position) - base

        return spans._replace(start=unit(spans.start), end=unit(spans.end))
