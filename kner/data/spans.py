"""Entity spans: character ranges with an entity type.

Example:

```python
from kner.data.spans import Span, flatten_spans

text = "浙商银行企业信贷部叶老桂博士"
span = Span(9, 11, "name")  # end is inclusive, as in CLUENER
assert text[span.start : span.end + 1] == "叶老桂"
flatten_spans([Span(0, 5, "book"), Span(1, 2, "company")])
# -> ([Span(0, 5, "book")], 1): the nested span is dropped
```
"""

from collections.abc import Iterable
from typing import NamedTuple


class Span(NamedTuple):
    """An entity mention covering characters `start..end`, both inclusive."""

    start: int
    end: int
    type: str


def find_conflict(spans: Iterable[Span]) -> tuple[Span, Span] | None:
    """Returns two spans that cannot both be annotations, or None.

    Two spans conflict when they cross (overlap without one containing the
    other) or cover the same characters with different types. Exact
    duplicates and spans nested strictly inside another do not conflict.
    """
    unique = sorted(set(spans))
    for i, first in enumerate(unique):
        for second in unique[i + 1 :]:
            if second.start > first.end:
                break
            same_extent = first[:2] == second[:2]
            nested = second.end <= first.end or second.start == first.start
            if same_extent or not nested:
                return first, second
    return None


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
