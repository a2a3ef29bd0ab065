"""Entity-level scores: exact span-set micro P/R/F1, per-type P/R/F1, the
CLUENER official score (per-type F1 averaged over types), and seqeval's
strict-mode report as a cross-check.

Example:
>>> report = evaluate(gold_spans, predicted_spans)   # lists of span lists
>>> report["micro"]["f1"], report["cluener_macro_f1"]
>>> print(format_report(report))
"""

from __future__ import annotations

import collections
from collections.abc import Sequence

from seqeval.metrics import classification_report
from seqeval.scheme import IOBES

from kner.data.spans import Span
from kner.data.tags import spans_to_tags


def _prf(correct: int, predicted: int, gold: int) -> dict[str, float]:
    precision = correct / predicted if predicted else 0.0
    recall = correct / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": gold}


def span_scores(gold: Sequence[Sequence[Span]], predicted: Sequence[Sequence[Span]]) -> dict:
    """Exact-match span scores, micro over all entities and per type."""
    counts = collections.defaultdict(lambda: [0, 0, 0])  # correct, predicted, gold
    for gold_spans, predicted_spans in zip(gold, predicted, strict=True):
        gold_set, predicted_set = set(gold_spans), set(predicted_spans)
        for span in predicted_set:
            counts[span.type][1] += 1
            counts[span.type][0] += span in gold_set
        for span in gold_set:
            counts[span.type][2] += 1
    per_type = {t: _prf(*counts[t]) for t in sorted(counts)}
    totals = [sum(c[i] for c in counts.values()) for i in range(3)]
    gold_types = [t for t in per_type if per_type[t]["support"]]
    return {
        "micro": _prf(*totals),
        "per_type": per_type,
        "cluener_macro_f1": sum(per_type[t]["f1"] for t in gold_types) / max(len(gold_types), 1),
    }


def seqeval_scores(texts: Sequence[str], gold: Sequence[Sequence[Span]], predicted: Sequence[Sequence[Span]]) -> dict:
    """seqeval in strict mode. Spans are written as BIOES tags, which every
    scheme maps into exactly, so the result is the same for any input scheme."""

    def tag_lists(spans):
        return [spans_to_tags(s, len(t), "bioes") for t, s in zip(texts, spans, strict=True)]

    report = classification_report(
        tag_lists(gold), tag_lists(predicted), mode="strict", scheme=IOBES, output_dict=True, zero_division=0
    )
    micro = report["micro avg"]
    return {k: float(micro[k]) for k in ("precision", "recall", "f1-score")}


def evaluate(texts: Sequence[str], gold: Sequence[Sequence[Span]], predicted: Sequence[Sequence[Span]]) -> dict:
    """The full report: span scores plus seqeval's strict micro scores."""
    report = span_scores(gold, predicted)
    report["seqeval"] = seqeval_scores(texts, gold, predicted)
    return report


def format_report(report: dict) -> str:
    """A plain-text table of per-type and overall scores."""
    rows = [f"{'type':<14}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]

    def row(name: str, s: dict) -> str:
        return f"{name:<14}{s['precision']:>10.4f}{s['recall']:>10.4f}{s['f1']:>10.4f}{s['support']:>10d}"

    rows += [row(t, s) for t, s in report["per_type"].items()]
    rows.append(row("micro", report["micro"]))
    rows.append(f"{'cluener macro F1':<34}{report['cluener_macro_f1']:>10.4f}")
    if "seqeval" in report:
        rows.append(f"{'seqeval strict F1':<34}{report['seqeval']['f1-score']:>10.4f}")
    return "\n".join(rows)
