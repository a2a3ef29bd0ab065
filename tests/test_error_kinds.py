import collections
import random

import pytest

from kner.data.spans import Span
from kner.error_kinds import (
    BOUNDARIES,
    boundary,
    boundary_errors,
    confusion,
    judge,
    judge_all,
    kind_counts,
)
from kner.metrics import span_scores


def kinds(judged):
    return [(j.span, j.kind, j.partner) for j in judged]


def test_each_kind():
    gold = [Span(0, 1, "name"), Span(3, 5, "loc"), Span(7, 8, "org"), Span(10, 11, "name")]
    predicted = [Span(0, 1, "name"), Span(3, 4, "loc"), Span(7, 8, "name"), Span(13, 14, "loc")]
    judged = judge(gold, predicted)
    assert kinds(judged.gold) == [
        (Span(0, 1, "name"), "correct", Span(0, 1, "name")),
        (Span(3, 5, "loc"), "wrong-span", Span(3, 4, "loc")),
        (Span(7, 8, "org"), "wrong-type", Span(7, 8, "name")),
        (Span(10, 11, "name"), "missed", None),
    ]
    assert kinds(judged.predicted) == [
        (Span(0, 1, "name"), "correct", Span(0, 1, "name")),
        (Span(3, 4, "loc"), "wrong-span", Span(3, 5, "loc")),
        (Span(7, 8, "name"), "wrong-type", Span(7, 8, "org")),
        (Span(13, 14, "loc"), "spurious", None),
    ]
    assert judged.errors == 6


def test_a_correct_entity_is_no_partner_and_duplicates_count_once():
    # The prediction [0, 1] inside the found gold [0, 3] overlaps only a
    # correct entity: spurious, not a boundary error.
    judged = judge([Span(0, 3, "org"), Span(0, 3, "org")], [Span(0, 3, "org"), Span(0, 1, "org")])
    assert kinds(judged.gold) == [(Span(0, 3, "org"), "correct", Span(0, 3, "org"))]
    assert [j.kind for j in judged.predicted] == ["spurious", "correct"]


def test_nested_and_same_extent_spans():
    """CMeEE-style gold: an entity inside another, and one extent under two
    types; a GlobalPointer's predictions cross."""
    gold = [Span(0, 5, "dis"), Span(0, 1, "bod"), Span(3, 5, "sym"), Span(3, 5, "dis")]
    predicted = [Span(0, 5, "dis"), Span(3, 5, "sym"), Span(1, 3, "bod"), Span(2, 4, "dis")]
    judged = judge(gold, predicted)
    assert kinds(judged.gold) == [
        (Span(0, 1, "bod"), "wrong-span", Span(1, 3, "bod")),
        (Span(0, 5, "dis"), "correct", Span(0, 5, "dis")),
        (Span(3, 5, "dis"), "wrong-span", Span(2, 4, "dis")),  # its own type first
        (Span(3, 5, "sym"), "correct", Span(3, 5, "sym")),
    ]
    assert [j.kind for j in judged.predicted] == ["correct", "wrong-span", "wrong-span", "correct"]


def test_the_partner_shares_the_most_characters():
    judged = judge([Span(0, 9, "org")], [Span(0, 1, "loc"), Span(2, 8, "name")])
    assert kinds(judged.gold) == [(Span(0, 9, "org"), "wrong-type", Span(2, 8, "name"))]


@pytest.mark.parametrize(
    ("predicted", "expected"),
    [
        (Span(1, 6, "x"), "longer"),
        (Span(2, 6, "x"), "longer"),
        (Span(2, 4, "x"), "shorter"),
        (Span(4, 7, "x"), "crossing"),
    ],
)
def test_boundary(predicted, expected):
    assert boundary(Span(2, 5, "x"), predicted) == expected


def random_spans(rng: random.Random, types: str) -> list[Span]:
    spans = []
    for _ in range(rng.randint(0, 6)):
        start = rng.randint(0, 15)
        spans.append(Span(start, start + rng.randint(0, 4), rng.choice(types)))
    return spans


def test_counts_agree_with_the_scorer_on_random_spans():
    rng = random.Random(3)
    gold = [random_spans(rng, "abc") for _ in range(200)]
    predicted = [random_spans(rng, "abcd") for _ in range(200)]
    judgements = judge_all(gold, predicted)
    scores = span_scores(gold, predicted)["per_type"]
    counts = kind_counts(judgements)
    matrix = confusion(judgements)
    for entity_type, values in scores.items():
        count = counts[entity_type]
        assert count["correct"] + count["missed"] + count["wrong-type"] + count["wrong-span"] == values["support"]
        if count["predicted"]:
            assert count["correct"] / count["predicted"] == values["precision"]
        # A confusion row adds up to the gold count of its type.
        assert sum(n for (g, _), n in matrix.items() if g == entity_type) == values["support"]
    spurious = collections.Counter(
        j.span.type for judged in judgements for j in judged.predicted if j.kind == "spurious"
    )
    assert {p: n for (g, p), n in matrix.items() if g is None} == dict(spurious)
    boundaries = boundary_errors(judgements)
    for entity_type, count in counts.items():
        assert sum(boundaries.get(entity_type, {}).values()) == count["wrong-span"]
    assert set().union(*boundaries.values()) <= set(BOUNDARIES)
