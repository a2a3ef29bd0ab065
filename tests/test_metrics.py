import pytest

from kner.data.spans import Span
from kner.data.tags import SCHEMES, spans_to_tags
from kner.metrics import as_iobes, cluener_score, evaluate, format_report, span_scores

GOLD = [[Span(0, 1, "name"), Span(3, 5, "loc")], [Span(0, 2, "loc")]]
PRED = [[Span(0, 1, "name"), Span(3, 4, "loc")], [Span(0, 2, "loc"), Span(4, 4, "org")]]
TEXTS = ["张三在北京市", "上海市很大"]


def test_span_scores_exact_match():
    report = span_scores(GOLD, PRED)
    # correct 2 of 4 predicted, 2 of 3 gold
    assert report["micro"]["precision"] == pytest.approx(0.5)
    assert report["micro"]["recall"] == pytest.approx(2 / 3)
    assert report["micro"]["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert report["per_type"]["loc"]["f1"] == pytest.approx(0.5)
    assert report["per_type"]["name"]["f1"] == 1.0
    assert report["per_type"]["org"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    # exact-span F1 averaged over the gold types only: (1.0 + 0.5) / 2
    assert report["type_macro_f1"] == pytest.approx(0.75)


def test_cluener_score_counts_a_repeated_string_once():
    """Issue 11: `北京到北京`, gold address at [0,1] and [3,4], predicted
    [0,1] only: CLUENER's score.py gives address F1 1.0, exact spans 0.667."""
    texts, gold, predicted = ["北京到北京"], [[Span(0, 1, "address"), Span(3, 4, "address")]], [[Span(0, 1, "address")]]
    average, per_type = cluener_score(texts, gold, predicted)
    assert per_type["address"] == 1.0
    assert average == pytest.approx(0.1)  # the 9 other types score 0
    assert span_scores(gold, predicted)["per_type"]["address"]["f1"] == pytest.approx(2 / 3)


def test_cluener_score_ignores_positions():
    """Issue 11: `北京人在北京`, gold [4,5], predicted [0,1]: score.py 1.0,
    exact spans 0."""
    texts, gold, predicted = ["北京人在北京"], [[Span(4, 5, "address")]], [[Span(0, 1, "address")]]
    assert cluener_score(texts, gold, predicted)[1]["address"] == 1.0
    assert span_scores(gold, predicted)["per_type"]["address"]["f1"] == 0.0


def test_cluener_score_only_for_cluener_types():
    assert "cluener_score_f1" not in evaluate(TEXTS, GOLD, PRED)
    gold = [[Span(0, 1, "name")], [Span(0, 2, "address")]]
    report = evaluate(TEXTS, gold, gold)
    assert report["cluener_score_f1"] == pytest.approx(0.2)
    assert "CLUENER score.py F1" in format_report(report)


def test_seqeval_scores_the_model_tags_not_the_entity_list():
    """A lone B- in bios is read leniently as an entity by the span scores,
    while seqeval's strict mode drops it, so the two disagree."""
    texts, gold = ["张三在北京"], [[Span(0, 1, "name")]]
    tags = [["B-name", "I-name", "O", "B-address", "O"]]
    predicted = [[Span(0, 1, "name"), Span(3, 3, "address")]]
    report = evaluate(texts, gold, predicted, tags, "bios")
    assert report["micro"]["precision"] == 0.5
    assert report["seqeval"]["precision"] == 1.0
    assert "seqeval strict F1 (model tags)" in format_report(report)
    assert "seqeval" not in evaluate(texts, gold, predicted)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_as_iobes_keeps_valid_entities(scheme):
    spans = [Span(0, 0, "a"), Span(2, 4, "b"), Span(5, 6, "a")]
    assert as_iobes(spans_to_tags(spans, 8, scheme), scheme) == spans_to_tags(spans, 8, "bioes")


def test_as_iobes_keeps_invalid_entities_invalid():
    assert as_iobes(["B-a", "O"], "bios") == ["B-a", "O"]
    assert as_iobes(["O", "I-a", "I-a"], "bio") == ["O", "I-a", "E-a"]
    assert as_iobes(["B-a", "I-b"], "bios") == ["B-a", "E-b"]


def test_perfect_and_empty():
    assert span_scores(GOLD, GOLD)["micro"]["f1"] == 1.0
    assert span_scores([[]], [[]])["micro"]["f1"] == 0.0


def test_span_scores_equal_seqeval_strict_on_flat_cluener_predictions():
    """On flat predictions, exact (start, end, type) sets score what
    seqeval's strict mode scores on the tags (CLUENER dev, predictions made
    from the gold by dropping, moving, retyping and adding entities)."""
    import random

    from shared_data import shared_file

    from kner.data.corpus import read_corpus
    from kner.data.spans import flatten_spans

    sentences = read_corpus(shared_file("cluener/dev.json"))
    rng = random.Random(0)
    predicted = []
    for sentence in sentences:
        spans = []
        for span in sentence.spans:
            roll = rng.random()
            if roll < 0.1:
                continue
            if roll < 0.2:
                span = span._replace(end=max(span.start, span.end - 1))
            elif roll < 0.3:
                span = span._replace(type=rng.choice(["name", "game", "book"]))
            spans.append(span)
        free = [i for i in range(len(sentence.text)) if not any(s.start <= i <= s.end for s in spans)]
        if free and rng.random() < 0.2:
            spans.append(Span(free[0], free[0], "scene"))
        predicted.append(flatten_spans(spans)[0])
    texts, gold = [s.text for s in sentences], [s.spans for s in sentences]
    tags = [spans_to_tags(p, len(t), "bios") for t, p in zip(texts, predicted)]
    report = evaluate(texts, gold, predicted, tags, "bios")
    assert 0.5 < report["micro"]["f1"] < 0.95
    for name in ("precision", "recall"):
        assert report["micro"][name] == pytest.approx(report["seqeval"][name], abs=1e-12)
    assert report["micro"]["f1"] == pytest.approx(report["seqeval"]["f1-score"], abs=1e-12)
