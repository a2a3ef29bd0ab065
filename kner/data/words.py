"""Word-level sentences: the text is the words joined by one space, and word
spans map to character spans of that text and back.

English NER data (CoNLL-2003, WNUT-17, OntoNotes in CoNLL columns) labels
words, while kner's spans are character offsets. A word-level `Sentence`
keeps its words as `[start, end)` character offsets into its text, so that
tags can be written one per word again and sub-tokens matched to the word
they start.

Example:

```python
from kner.data.spans import Span
from kner.data.words import char_spans, join_words, word_spans

text, words = join_words(["Empire", "State", "Building", "!"])
# "Empire State Building !", [(0, 6), (7, 12), (13, 21), (22, 23)]
char_spans([Span(0, 2, "location")], words)  # [Span(0, 20, "location")]
word_spans([Span(0, 20, "location")], words)  # [Span(0, 2, "location")]
```
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence

from kner.data.spans import Span

WORD_SEPARATOR = " "
Offsets = Sequence[tuple[int, int]]


def join_words(words: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """The sentence text (the words joined by one space) and each word's
    `[start, end)` character offsets in it."""
    offsets, start = [], 0
    for word in words:
        offsets.append((start, start + len(word)))
        start += len(word) + len(WORD_SEPARATOR)
    return WORD_SEPARATOR.join(words), offsets


def char_spans(spans: Iterable[Span], words: Offsets) -> list[Span]:
    """Spans over word indices (inclusive) as spans over characters (inclusive)."""
    return [Span(words[span.start][0], words[span.end][1] - 1, span.type) for span in spans]


def word_spans(spans: Iterable[Span], words: Offsets) -> list[Span]:
    """Spans over characters as spans over word indices; raises ValueError
    for a span that does not start at a word's first character and end at a
    word's last."""
    starts = [start for start, _ in words]
    ends = [end - 1 for _, end in words]
    result = []
    for span in spans:
        first = bisect.bisect_left(starts, span.start)
        last = bisect.bisect_left(ends, span.end)
        if first == len(starts) or last == len(ends) or starts[first] != span.start or ends[last] != span.end:
            raise ValueError(f"span [{span.start}, {span.end}] {span.type} does not fall on word boundaries")
        result.append(Span(first, last, span.type))
    return result


def snap_to_words(spans: Iterable[Span], words: Offsets) -> list[Span]:
    """Character spans widened to the words they overlap (a span over no word
    is dropped), so that predictions score per word."""
    starts = [start for start, _ in words]
    ends = [end for _, end in words]
    result = []
    for span in spans:
        first = bisect.bisect_right(ends, span.start)
        last = bisect.bisect_right(starts, span.end) - 1
        if first <= last:
            result.append(Span(starts[first], ends[last] - 1, span.type))
    return result


def tags_of_words(tags: Sequence[str], unit_starts: Sequence[int], words: Offsets, outside: str) -> list[str]:
    """One tag per word: the tag of the labelled unit that starts where the
    word starts (its first sub-token), `outside` for a word without one."""
    by_start = dict(zip(unit_starts, tags))
    return [by_start.get(start, outside) for start, _ in words]
