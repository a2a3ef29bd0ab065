import pytest

from kner.data.spans import Span
from kner.metrics import evaluate, format_report, span_scores

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
    # CLUENER averages F1 over the gold types only: (1.0 + 0.5) / 2
    assert report["cluener_macro_f1"] == pytest.approx(0.75)


def test_seqeval_strict_agrees_with_span_scores():
    report = evaluate(TEXTS, GOLD, PRED)
    assert report["seqeval"]["f1-score"] == pytest.approx(report["micro"]["f1"])
    assert "cluener macro F1" in format_report(report)


def test_perfect_and_empty():
    assert span_scores(GOLD, GOLD)["micro"]["f1"] == 1.0
    assert span_scores([[]], [[]])["micro"]["f1"] == 0.0
