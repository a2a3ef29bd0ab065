"""Labelled units: which tokens carry a label, and the characters each covers.

A head tags *units*, not tokens. With one token per character
(`CharTokenizer`) every token is a unit. Under WordPiece a word splits into
sub-tokens, and the data says what is labelled:

- `tokens` (`TokenUnits`): every token is a unit. Character-labelled data
  (CLUENER, Chinese text with English words) and word-level data with
  `--label_subtokens=all`: an entity covers whole tokens, so a boundary
  inside a sub-token widens to it (`kner.data.pipeline` counts them).
- `words` (`WordUnits`): the first token of each word is a unit, the other
  sub-tokens (`##` continuations) are masked out of the loss and the
  metrics, as BERT's paper and Hugging Face's `run_ner.py` label
  CoNLL-2003. Words are the tokenizer's own (BERT's BasicTokenizer splits
  at whitespace and around punctuation and CJK characters), so raw text at
  serving time has the units the model trained on: a CoNLL word such as
  `U.S.` is four units (its entity tags B- I- I- I-), `Zürich,` two.

A unit covers the characters `[start, end)` from its first token's start to
the end of the last token before the next unit (`unit_offsets`). Both
functions are core TF ops on a batch, so the tf.data pipeline and the serving
graph run the same code. `LABEL_UNITS` names them as `settings.json` keeps
them (`label_units`).

Example:

```python
tokens = tokenizer.tokenize(texts)                  # kner.data.tokenizer_base.Tokenized
is_unit = WordUnits().starts(tokens, tokenizer)     # [batch, (tokens)] bool
unit_start, unit_end = unit_offsets(tokens, is_unit)  # [batch, (units)] int32 characters
```
"""

from __future__ import annotations

import abc
import bisect
from collections.abc import Iterable, Sequence
from typing import ClassVar

import tensorflow as tf

from kner.data.spans import Span
from kner.data.tokenizer_base import Tokenized, Tokenizer


class LabelUnits(abc.ABC):
    """Which tokens start a labelled unit (module doc)."""

    name: ClassVar[str]

    @abc.abstractmethod
    def starts(self, tokens: Tokenized, tokenizer: Tokenizer) -> tf.RaggedTensor:
        """bool [batch, (tokens)]: whether each token of `tokens` (as
        `tokenizer` gave them) starts a unit."""


class TokenUnits(LabelUnits):
    """Every token is a unit."""

    name = "tokens"

    def starts(self, tokens: Tokenized, tokenizer: Tokenizer) -> tf.RaggedTensor:
        del tokenizer
        return tf.ones_like(tokens.ids, tf.bool)


class WordUnits(LabelUnits):
    """The first token of each word is a unit: every token but WordPiece's
    `##` continuations (`Tokenizer.continues`)."""

    name = "words"

    def starts(self, tokens: Tokenized, tokenizer: Tokenizer) -> tf.RaggedTensor:
        return tf.ragged.map_flat_values(lambda ids: ~tokenizer.continues(ids), tokens.ids)


LABEL_UNITS: dict[str, type[LabelUnits]] = {units.name: units for units in (TokenUnits, WordUnits)}


def make_units(name: str) -> LabelUnits:
    """The units named `name` (a key of `LABEL_UNITS`); ValueError otherwise."""
    if name not in LABEL_UNITS:
        raise ValueError(f"unknown label units {name!r}; expected one of {', '.join(LABEL_UNITS)}")
    return LABEL_UNITS[name]()


def unit_offsets(tokens: Tokenized, is_unit: tf.RaggedTensor) -> tuple[tf.RaggedTensor, tf.RaggedTensor]:
    """Each unit's `[start, end)` characters: int32 [batch, (units)] each,
    from its first token's start to the end of the last token before the
    next unit of its text."""
    flat_unit = tf.where(is_unit.flat_values)[:, 0]
    unit_row = tf.gather(is_unit.value_rowids(), flat_unit)
    row_limit = tf.gather(is_unit.row_limits(), unit_row)
    total = tf.size(is_unit.flat_values, out_type=tf.int64)
    next_unit = tf.concat([flat_unit[1:], [total]], 0)
    last = tf.minimum(next_unit, row_limit) - 1
    counts = tf.reduce_sum(tf.cast(is_unit, tf.int64), axis=1)
    start = tf.RaggedTensor.from_row_lengths(tf.gather(tokens.starts.flat_values, flat_unit), counts, validate=False)
    end = tf.RaggedTensor.from_row_lengths(tf.gather(tokens.ends.flat_values, last), counts, validate=False)
    return start, end


def to_unit_spans(
    spans: Iterable[Span], unit_start: Sequence[int], unit_end: Sequence[int]
) -> tuple[list[Span], int, int]:
    """Character spans (inclusive) as spans over units (inclusive): the
    first unit that ends after a span's start to the last that starts at or
    before its end. Returns the unit spans, how many spans moved to other
    boundaries (a boundary inside a unit widens to it) and how many cover
    no unit (dropped: only whitespace or characters the tokenizer drops)."""
    result, moved, lost = [], 0, 0
    for span in spans:
        first = bisect.bisect_right(unit_end, span.start)
        last = bisect.bisect_right(unit_start, span.end) - 1
        if first > last:
            lost += 1
            continue
        moved += unit_start[first] != span.start or unit_end[last] - 1 != span.end
        result.append(Span(first, last, span.type))
    return result, moved, lost


def to_char_spans(spans: Iterable[Span], unit_start: Sequence[int], unit_end: Sequence[int]) -> list[Span]:
    """Spans over units (inclusive) as character spans (inclusive)."""
    return [Span(int(unit_start[s.start]), int(unit_end[s.end]) - 1, s.type) for s in spans]
