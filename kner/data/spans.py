"""Entity spans: character ranges with an entity type, and how they overlap.

Readers keep every span a file holds: nested (one inside another),
crossing (overlapping, neither inside the other) and the same extent under
two types all occur in real data (CMeEE, CBLUE's medical NER, has all three).
Heads that tag one label per character cannot hold them: `flatten_spans`
keeps the outer one of nested spans and refuses the other two
(`find_conflict`); pair heads (GlobalPointer) train on all of them.

Example:

```python
from kner.data.spans import Span, flatten_spans, overlaps

text = "浙商银行企业信贷部叶老桂博士"
span = Span(9, 11, "name")  # end is inclusive, as in CLUENER
assert text[span.start : span.end + 1] == "叶老桂"
flatten_spans([Span(0, 5, "book"), Span(1, 2, "company")])
# -> ([Span(0, 5, "book")], 1): the nested span is dropped
overlaps([Span(0, 5, "book"), Span(1, 2, "company"), Span(4, 7, "name")])
# -> Overlaps(nested=1, crossing=1, same_extent=0)
```
"""

from collections.abc import Iterable
from typing import NamedTuple


class Span(NamedTuple):
    """An entity mention covering characters `start..end`, both inclusive."""

    start: int
    end: int
    type: str


class Overlaps(NamedTuple):
    """Pairs of distinct spans that overlap, by kind."""

    nested: int  # one inside the other, not the same extent
    crossing: int  # overlapping, neither inside the other
    same_extent: int  # the same characters under two types


def _overlapping_pairs(spans: Iterable[Span]) -> Iterable[tuple[Span, Span]]:
    """Pairs of distinct overlapping spans, in sorted order."""
    unique = sorted(set(spans))
    for i, first in enumerate(unique):
        for second in unique[i + 1 :]:
            if second.start > first.end:
                break
            yield first, second


def _kind(first: Span, second: Span) -> str:
    """How two overlapping spans, `first` <= `second` in sorted order, overlap."""
    if first[:2] == second[:2]:
        return "same_extent"
    if second.end <= first.end or second.start == first.start:
        return "nested"
    return "crossing"


def overlaps(spans: Iterable[Span]) -> Overlaps:
    """Counts the overlapping pairs of distinct spans, by kind."""
    counts = dict.fromkeys(Overlaps._fields, 0)
    for pair in _overlapping_pairs(spans):
        counts[_kind(*pair)] += 1
    return Overlaps(**counts)


def find_conflict(spans: Iterable[Span]) -> tuple[Span, Span] | None:
    """The first two spans that one tag per character cannot hold, or None.

    Two spans conflict when they cross (overlap without one containing the
    other) or cover the same characters with different types. Exact
    duplicates and spans nested strictly inside another do not conflict.
    """
    return next((pair for pair in _overlapping_pairs(spans) if _kind(*pair) != "nested"), None)


def drop_conflicts(spans: Iterable[Span]) -> tuple[list[Span], int]:
    """Sorted spans without conflicts (see `find_conflict`): each span that
    crosses an earlier kept one, or shares its extent, is dropped (earlier:
    in sorted order, so of two spans at one start the shorter stays).
    Returns the kept spans and how many were dropped; nested spans stay."""
    kept: list[Span] = []
    unique = sorted(set(spans))
    for span in unique:
        if find_conflict([*kept, span]) is None:
            kept.append(span)
    return kept, len(unique) - len(kept)


def flatten_spans(spans: Iterable[Span]) -> tuple[list[Span], int]:
    """Sorts spans, keeping only the outermost of nested ones.

    Flat tag schemes cannot represent an entity inside another (the
    official CLUENER train set has one such sentence), so the inner spans
    are dropped. Returns the kept spans and how many were dropped; exact
    duplicates count as one span. Raises ValueError for conflicting spans
    (see `find_conflict`).
    """
    unique = sorted(set(spans))
    conflict = find_conflict(unique)
    if conflict:
        raise ValueError(f"spans {conflict[0]} and {conflict[1]} overlap")
    kept = [
        span
        for span in unique
        if not any(other != span and other.start <= span.start and span.end <= other.end for other in unique)
    ]
    return kept, len(unique) - len(kept)
