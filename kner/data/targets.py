"""Targets: how gold spans become what a head trains on.

A head reads the backbone at the *labelled units* of a sentence, the
characters: unit i is character i (the model input's token i + 1, after
`[CLS]`). Each head names its targets encoder (`Head.targets`):

- `TagTargets(labels)`: one tag id per character (softmax and CRF heads), the
  batch's `label_ids` [B, L - 1] int32 for `[CLS] chars [SEP]` inputs of L
  tokens (0, the `O` tag, past a sentence). Tag schemes cannot hold an
  entity inside another: nested spans keep the outer one
  (`kner.data.spans.flatten_spans`), crossing and same-extent spans raise.
- `SpanTargets(types)`: the (type id, start, end) triple of every span,
  nested, crossing and same-extent ones included (GlobalPointer heads): the
  batch's `span_labels` [B, N, 3] int32, N the most spans of a sentence in
  the batch, rows padded with -1. Sparse: never a dense [B, types, L, L]
  table.

Each writes the batch columns `keys`: `encode` turns one sentence's spans
into rows of plain ints, cut to `kept` characters when training truncates
(`kner.data.pipeline`); `ragged` stores the rows of a data set as ragged
tensors; `pad` makes a batch's dense tensors inside `tf.data`.

Example:

```python
from kner.data.labels import LabelVocab
from kner.data.spans import Span, flatten_spans
from kner.data.targets import PointerTargets, SpanTargets, TagTargets

labels = LabelVocab.from_types(["bod", "sym"], "bio")
TagTargets(labels).encode([Span(0, 1, "bod")], 3, 3)  # {"label_ids": [1, 2, 0]}
SpanTargets(labels.types).encode([Span(0, 3, "sym"), Span(0, 1, "bod")], 4, 4)
# {"span_labels": [[0, 0, 1], [1, 0, 3]]}
PointerTargets(labels.types).encode([Span(1, 2, "sym")], 4, 4)
# {"start_ids": [0, 2, 0, 0], "end_ids": [0, 0, 2, 0]}
```
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import tensorflow as tf

from kner.data.labels import LabelVocab
from kner.data.spans import Span, flatten_spans


class TagTargets:
    """One tag id per character (see the module doc)."""

    key = "label_ids"
    keys = (key,)

    def __init__(self, labels: LabelVocab):
        self.labels = labels

    def encode(self, spans: Iterable[Span], length: int, kept: int) -> dict[str, list[int]]:
        """Tag ids of the first `kept` of `length` characters; an entity
        the cut crosses keeps its tags up to the cut."""
        return {self.key: self.labels.encode(spans, length)[:kept]}

    @property
    def specs(self) -> dict[str, tf.TensorSpec]:
        """The batch columns' shapes and types."""
        return {self.key: tf.TensorSpec([None, None], tf.int32)}

    def ragged(self, rows: dict[str, Sequence[Sequence[int]]]) -> dict[str, tf.RaggedTensor]:
        return {self.key: ragged_rows(rows[self.key], np.int32)}

    def pad(self, columns: dict[str, tf.Tensor], units: tf.Tensor) -> dict[str, tf.Tensor]:
        """`label_ids` [B, units] from ragged (or padded) rows."""
        return {self.key: pad_rows(columns[self.key], units)}


class SpanTargets:
    """The (type id, start, end) triple of every span (see the module doc);
    type ids index `types`."""

    key = "span_labels"
    keys = (key,)

    def __init__(self, types: Sequence[str]):
        self.types = list(types)
        self._ids = {name: index for index, name in enumerate(self.types)}

    def encode(self, spans: Iterable[Span], length: int, kept: int) -> dict[str, list[list[int]]]:
        """Sorted, deduplicated triples of the spans inside the first `kept`
        characters."""
        del length
        unique = sorted({(self._ids[s.type], s.start, s.end) for s in spans if s.end < kept})
        return {self.key: [list(triple) for triple in unique]}

    @property
    def specs(self) -> dict[str, tf.TensorSpec]:
        """The batch columns' shapes and types."""
        return {self.key: tf.TensorSpec([None, None, 3], tf.int32)}

    def ragged(self, rows: dict[str, Sequence[Sequence[Sequence[int]]]]) -> dict[str, tf.RaggedTensor]:
        triples = rows[self.key]
        flat = np.array([t for row in triples for t in row], np.int32).reshape(-1, 3)
        lengths = np.fromiter((len(row) for row in triples), np.int64, len(triples))
        return {self.key: tf.RaggedTensor.from_row_lengths(flat, lengths)}

    def pad(self, columns: dict[str, tf.Tensor], units: tf.Tensor) -> dict[str, tf.Tensor]:
        """`span_labels` [B, N, 3], rows padded with -1."""
        del units
        return {self.key: columns[self.key].to_tensor(-1)}


class PointerTargets:
    """Start and end labels per character (see the module doc): type id + 1
    of the entity starting (`start_ids`) and ending (`end_ids`) at each
    character, 0 for none; type ids index `types`."""

    keys = ("start_ids", "end_ids")

    def __init__(self, types: Sequence[str]):
        self.types = list(types)
        self._ids = {name: index + 1 for index, name in enumerate(self.types)}

    def encode(self, spans: Iterable[Span], length: int, kept: int) -> dict[str, list[int]]:
        """The labels of the first `kept` of `length` characters: the outer
        spans (`flatten_spans`) that end inside them; an entity the cut
        crosses is dropped whole (as `SpanTargets` drops it)."""
        del length
        starts, ends = [0] * kept, [0] * kept
        for span in flatten_spans(spans)[0]:
            if span.end < kept:
                starts[span.start] = ends[span.end] = self._ids[span.type]
        return {"start_ids": starts, "end_ids": ends}

    @property
    def specs(self) -> dict[str, tf.TensorSpec]:
        """The batch columns' shapes and types."""
        return {key: tf.TensorSpec([None, None], tf.int32) for key in self.keys}

    def ragged(self, rows: dict[str, Sequence[Sequence[int]]]) -> dict[str, tf.RaggedTensor]:
        return {key: ragged_rows(rows[key], np.int32) for key in self.keys}

    def pad(self, columns: dict[str, tf.Tensor], units: tf.Tensor) -> dict[str, tf.Tensor]:
        """`start_ids` and `end_ids` [B, units] from ragged (or padded) rows."""
        return {key: pad_rows(columns[key], units) for key in self.keys}


def pad_rows(rows: tf.Tensor | tf.RaggedTensor, units: tf.Tensor) -> tf.Tensor:
    """Ragged (or padded) int rows as a dense [B, units] tensor, 0 after
    each row."""
    if isinstance(rows, tf.RaggedTensor):
        rows = rows.to_tensor(0)
    return tf.pad(rows, [[0, 0], [0, units - tf.shape(rows)[1]]])


def ragged_rows(rows: Sequence[Sequence[int]], dtype) -> tf.RaggedTensor:
    """Rows of ints as a ragged [rows, (length)] tensor of numpy `dtype`."""
    lengths = np.fromiter((len(r) for r in rows), np.int64, len(rows))
    values = np.fromiter((v for r in rows for v in r), dtype, int(lengths.sum()))
    return tf.RaggedTensor.from_row_lengths(values, lengths)
