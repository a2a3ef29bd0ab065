"""Entity-level scores, each named for what it computes:

- `micro`: exact-span micro precision, recall and F1 (a predicted entity is
  correct when its start, end and type equal a gold entity's);
- `per_type`: the same per entity type;
- `type_macro_f1`: those per-type exact-span F1 scores averaged over the
  types present in the gold data;
- `cluener_score_f1`: the score of CLUENER2020's own `score.py`
  (github.com/CLUEbenchmark/CLUENER2020, `score.py`, `get_f1_score`),
  reproduced exactly: entity *strings* per sentence and type, positions
  ignored, F1 averaged over its fixed list of 10 types (only when every gold
  type is one of them);
- `seqeval`: seqeval's strict-mode micro scores of the tag sequences the
  model produced (invalid entities in them are dropped, as seqeval and the
  CLUENER baselines' `get_entity_bios` do), when those tags are given.

Example:
>>> report = evaluate(texts, gold_spans, predicted_spans, predicted_tags, "bios")
>>> report["micro"]["f1"], report["type_macro_f1"], report["cluener_score_f1"]
>>> print(format_report(report))
"""

from __future__ import annotations

import collections
from collections.abc import Sequence

from kner.data.spans import Span
from kner.data.tags import OUTSIDE, spans_to_tags
from kner.data.words import Offsets, word_spans

# The types `score.py` averages over, in its order (the dataset's spelling).
CLUENER_TYPES = (
    "address",
    "book",
    "company",
    "game",
    "government",
    "movie",
    "name",
    "organization",
    "position",
    "scene",
)


def _prf(correct: int, predicted: int, gold: int) -> dict[str, float]:
    precision = correct / predicted if predicted else 0.0
    recall = correct / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": gold}


def span_scores(gold: Sequence[Sequence[Span]], predicted: Sequence[Sequence[Span]]) -> dict:
    """Exact-match span scores: micro over all entities, per type, and the
    per-type F1 averaged over the gold types (`type_macro_f1`)."""
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
        "type_macro_f1": sum(per_type[t]["f1"] for t in gold_types) / max(len(gold_types), 1),
    }


def cluener_score(
    texts: Sequence[str], gold: Sequence[Sequence[Span]], predicted: Sequence[Sequence[Span]]
) -> tuple[float, dict[str, float]]:
    """CLUENER2020's `score.py` (`get_f1_score_label`, `get_f1_score`).

    Per sentence and type it compares the sets of entity strings (the keys
    of a CLUENER `label` dict): a string repeated in a sentence counts once,
    and the right string at another position counts as correct. Per type it
    counts TP, FP, FN over all sentences, takes F1, and averages F1 over the
    10 `CLUENER_TYPES` whatever the data holds. Where `score.py` divides by
    zero (a type never predicted, or F1 with P + R = 0) the F1 here is 0.

    Returns the average and the F1 of each type.
    """

    def strings(text: str, spans: Sequence[Span], entity_type: str) -> set[str]:
        return {text[s.start : s.end + 1] for s in spans if s.type == entity_type}

    per_type = {}
    for entity_type in CLUENER_TYPES:
        tp = fp = fn = 0
        for text, gold_spans, predicted_spans in zip(texts, gold, predicted, strict=True):
            gold_strings = strings(text, gold_spans, entity_type)
            predicted_strings = strings(text, predicted_spans, entity_type)
            tp += len(predicted_strings & gold_strings)
            fp += len(predicted_strings - gold_strings)
            fn += len(gold_strings - predicted_strings)
        per_type[entity_type] = _prf(tp, tp + fp, tp + fn)["f1"]
    return sum(per_type.values()) / len(CLUENER_TYPES), per_type


def as_iobes(tags: Sequence[str], scheme: str) -> list[str]:
    """Tags of `scheme` rewritten into IOBES for seqeval, entity for entity:
    M- becomes I-; in bio a B- that no I- of its type follows becomes S-;
    in bio and bios the last I- of a run of its type becomes E-. Valid
    entities map to valid IOBES entities, and invalid ones (a lone B- in
    bios, an orphan I-) stay invalid, so seqeval's strict mode drops them."""
    tags = [f"I-{t[2:]}" if t.startswith("M-") else t for t in tags]
    rewritten = []
    for position, tag in enumerate(tags):
        following = tags[position + 1] if position + 1 < len(tags) else OUTSIDE
        continued = tag != OUTSIDE and following == f"I-{tag[2:]}"
        if scheme == "bio" and tag.startswith("B-") and not continued:
            tag = f"S-{tag[2:]}"
        elif scheme in ("bio", "bios") and tag.startswith("I-") and not continued:
            tag = f"E-{tag[2:]}"
        rewritten.append(tag)
    return rewritten


def seqeval_scores(
    texts: Sequence[str],
    gold: Sequence[Sequence[Span]],
    predicted_tags: Sequence[Sequence[str]],
    scheme: str,
    words: Sequence[Offsets | None] | None = None,
) -> dict:
    """seqeval's strict-mode micro scores of the model's own tag sequences
    (in `scheme`, see `as_iobes`) against the gold spans: one tag per
    character, or per word of the sentences that have `words` (CoNLL)."""
    # Imported here: seqeval imports scikit-learn (a second or more), which
    # span scores and the error report (`kner.report`) do not need.
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOBES

    words = words or [None] * len(texts)
    gold_tags = [
        spans_to_tags(s, len(t), "bioes") if w is None else spans_to_tags(word_spans(s, w), len(w), "bioes")
        for t, s, w in zip(texts, gold, words, strict=True)
    ]
    predicted = [as_iobes(tags, scheme) for tags in predicted_tags]
    report = classification_report(gold_tags, predicted, mode="strict", scheme=IOBES, output_dict=True, zero_division=0)
    micro = report["micro avg"]
    return {k: float(micro[k]) for k in ("precision", "recall", "f1-score")}


def evaluate(
    texts: Sequence[str],
    gold: Sequence[Sequence[Span]],
    predicted: Sequence[Sequence[Span]],
    predicted_tags: Sequence[Sequence[str]] | None = None,
    scheme: str | None = None,
    words: Sequence[Offsets | None] | None = None,
) -> dict:
    """The full report (see the module doc): span scores, the CLUENER
    `score.py` score when the gold types are CLUENER's, and seqeval's strict
    scores of `predicted_tags` (the model's tags in `scheme`, per word of the
    sentences with `words`, `kner.data.words`) when given."""
    report = span_scores(gold, predicted)
    if all(t in CLUENER_TYPES for spans in gold for t in {s.type for s in spans}):
        report["cluener_score_f1"], report["cluener_score_per_type"] = cluener_score(texts, gold, predicted)
    if predicted_tags is not None and scheme is not None:
        report["seqeval"] = seqeval_scores(texts, gold, predicted_tags, scheme, words)
    return report


def format_report(report: dict) -> str:
    """A plain-text table of per-type and overall scores."""
    rows = [f"{'type':<14}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]

    def row(name: str, s: dict) -> str:
        return f"{name:<14}{s['precision']:>10.4f}{s['recall']:>10.4f}{s['f1']:>10.4f}{s['support']:>10d}"

    rows += [row(t, s) for t, s in report["per_type"].items()]
    rows.append(row("micro", report["micro"]))
    rows.append(f"{'macro F1 over types (exact spans)':<34}{report['type_macro_f1']:>10.4f}")
    if "cluener_score_f1" in report:
        rows.append(f"{'CLUENER score.py F1 (strings)':<34}{report['cluener_score_f1']:>10.4f}")
    if "seqeval" in report:
        rows.append(f"{'seqeval strict F1 (model tags)':<34}{report['seqeval']['f1-score']:>10.4f}")
    return "\n".join(rows)
