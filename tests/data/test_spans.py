import pytest

from kner.data.spans import Overlaps, Span, drop_conflicts, find_conflict, flatten_spans, overlaps


def test_span_end_is_inclusive():
    text = "浙商银行企业信贷部叶老桂博士"
    start, end, _ = Span(9, 11, "name")
    assert text[start : end + 1] == "叶老桂"


@pytest.mark.parametrize(
    "spans, conflict",
    [
        ([Span(0, 2, "a"), Span(3, 4, "b")], None),
        ([Span(0, 2, "a"), Span(0, 2, "a")], None),
        ([Span(0, 5, "a"), Span(1, 2, "b"), Span(3, 5, "c")], None),
        ([Span(0, 5, "a"), Span(0, 2, "b")], None),
        ([Span(0, 2, "a"), Span(2, 4, "b")], (Span(0, 2, "a"), Span(2, 4, "b"))),
        ([Span(1, 3, "b"), Span(1, 3, "a")], (Span(1, 3, "a"), Span(1, 3, "b"))),
        (
            [Span(0, 9, "a"), Span(1, 4, "b"), Span(3, 6, "c")],
            (Span(1, 4, "b"), Span(3, 6, "c")),
        ),
    ],
)
def test_find_conflict(spans, conflict):
    assert find_conflict(spans) == conflict


def test_flatten_keeps_outermost_and_counts_dropped():
    spans = [Span(16, 19, "company"), Span(15, 34, "book"), Span(23, 26, "company")]
    assert flatten_spans([*spans, Span(0, 1, "x")]) == (
        [Span(0, 1, "x"), Span(15, 34, "book")],
        2,
    )


def test_flatten_merges_duplicates_and_sorts():
    spans = [Span(5, 6, "b"), Span(0, 1, "a"), Span(5, 6, "b")]
    assert flatten_spans(spans) == ([Span(0, 1, "a"), Span(5, 6, "b")], 0)


def test_flatten_rejects_crossing_spans():
    with pytest.raises(ValueError, match="overlap"):
        flatten_spans([Span(0, 2, "a"), Span(1, 3, "b")])


def test_overlaps_count_each_kind_of_pair_once():
    spans = [
        Span(0, 5, "sym"),
        Span(0, 1, "bod"),  # nested in 0-5, sharing its start
        Span(2, 3, "bod"),  # nested in 0-5
        Span(2, 3, "sym"),  # same extent as 2-3 bod, nested in 0-5
        Span(4, 7, "dis"),  # crosses 0-5
        Span(4, 7, "dis"),  # a duplicate counts once
        Span(9, 9, "x"),
    ]
    assert overlaps(spans) == Overlaps(nested=3, crossing=1, same_extent=1)
    assert overlaps([]) == Overlaps(0, 0, 0)


def test_drop_conflicts_keeps_the_earlier_span_of_each_pair_and_nested_ones():
    spans = [Span(4, 7, "dis"), Span(0, 5, "sym"), Span(0, 1, "bod"), Span(0, 1, "sym"), Span(9, 9, "x")]
    kept, dropped = drop_conflicts(spans)
    assert kept == [Span(0, 1, "bod"), Span(0, 5, "sym"), Span(9, 9, "x")] and dropped == 2
    assert find_conflict(kept) is None and drop_conflicts(kept) == (kept, 0)
