"""What became of each entity: correct, missed, spurious, wrong type or wrong span.

Per sentence, after exact duplicates are dropped (as `kner.metrics` counts):

- `correct`: a predicted entity with the start, end and type of a gold one
  (both are marked correct; these are `kner.metrics`' true positives);
- of the rest, a gold and a predicted entity that overlap are paired: the
  pair is `wrong-span` when the types agree (a boundary error: right type,
  wrong span), else `wrong-type` (whether or not the extents also differ);
  each entity takes the overlapping partner of its own type first, then the
  one sharing the most characters, then the one whose start is nearest;
- a gold entity with no such partner is `missed`, a predicted one `spurious`.

Entities may nest and overlap on either side (a GlobalPointer's output,
CMeEE's gold), including the same extent under two types. A boundary error
is `longer` (the prediction contains the gold entity), `shorter` (it lies
inside it) or `crossing`. `confusion` counts each gold entity once, under the
type of the prediction it matched or was paired with (`None`: missed), and
each spurious prediction once under gold type `None`; so a row adds up to the
gold count of its type.

Example:
>>> judged = judge([Span(0, 1, "name"), Span(3, 5, "loc")], [Span(0, 2, "name")])
>>> [(j.span, j.kind) for j in judged.gold]
[(Span(0, 1, 'name'), 'wrong-span'), (Span(3, 5, 'loc'), 'missed')]
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from kner.data.spans import Span

CORRECT, MISSED, SPURIOUS, WRONG_TYPE, WRONG_SPAN = "correct", "missed", "spurious", "wrong-type", "wrong-span"
KINDS = (CORRECT, MISSED, SPURIOUS, WRONG_TYPE, WRONG_SPAN)
BOUNDARIES = ("longer", "shorter", "crossing")


class Judged(NamedTuple):
    """An entity, its kind, and its partner on the other side (itself when
    correct, None when missed or spurious)."""

    span: Span
    kind: str
    partner: Span | None


@dataclasses.dataclass
class SentenceJudgement:
    """Every gold and predicted entity of a sentence, judged (sorted by span)."""

    gold: list[Judged]
    predicted: list[Judged]

    @property
    def errors(self) -> int:
        """Entities on either side that are not correct."""
        return sum(j.kind != CORRECT for j in (*self.gold, *self.predicted))


def _overlap(a: Span, b: Span) -> int:
    return max(0, min(a.end, b.end) - max(a.start, b.start) + 1)


def _judge_side(spans: list[Span], correct: set[Span], others: list[Span], alone: str) -> list[Judged]:
    """Judges `spans` against the unmatched entities `others` of the other side."""
    judged = []
    for span in spans:
        if span in correct:
            judged.append(Judged(span, CORRECT, span))
            continue
        overlapping = [other for other in others if _overlap(span, other)]
        if not overlapping:
            judged.append(Judged(span, alone, None))
            continue
        partner = min(
            overlapping,
            key=lambda o: (o.type != span.type, -_overlap(span, o), abs(o.start - span.start), o),
        )
        judged.append(Judged(span, WRONG_SPAN if partner.type == span.type else WRONG_TYPE, partner))
    return judged


def judge(gold: Iterable[Span], predicted: Iterable[Span]) -> SentenceJudgement:
    """Judges the entities of one sentence (see the module doc)."""
    gold, predicted = sorted(set(gold)), sorted(set(predicted))
    correct = set(gold) & set(predicted)
    unmatched_gold = [s for s in gold if s not in correct]
    unmatched_predicted = [s for s in predicted if s not in correct]
    return SentenceJudgement(
        _judge_side(gold, correct, unmatched_predicted, MISSED),
        _judge_side(predicted, correct, unmatched_gold, SPURIOUS),
    )


def judge_all(gold: Sequence[Sequence[Span]], predicted: Sequence[Sequence[Span]]) -> list[SentenceJudgement]:
    """`judge` for each sentence; `gold` and `predicted` have one entry per sentence."""
    return [judge(g, p) for g, p in zip(gold, predicted, strict=True)]


def confusion(judgements: Iterable[SentenceJudgement]) -> collections.Counter:
    """Counts of (gold type or None, predicted type or None); see the module doc."""
    counts = collections.Counter()
    for judgement in judgements:
        for gold in judgement.gold:
            counts[gold.span.type, gold.partner.type if gold.partner else None] += 1
        counts.update((None, p.span.type) for p in judgement.predicted if p.kind == SPURIOUS)
    return counts


def boundary(gold: Span, predicted: Span) -> str:
    """How a predicted span misses an overlapping gold one: `longer`,
    `shorter` or `crossing`."""
    if predicted.start <= gold.start and gold.end <= predicted.end:
        return "longer"
    if gold.start <= predicted.start and predicted.end <= gold.end:
        return "shorter"
    return "crossing"


def boundary_errors(judgements: Iterable[SentenceJudgement]) -> dict[str, collections.Counter]:
    """Per gold type, the gold entities found with the right type and the
    wrong span, counted by `boundary` kind."""
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for judgement in judgements:
        for gold in judgement.gold:
            if gold.kind == WRONG_SPAN:
                counts[gold.span.type][boundary(gold.span, gold.partner)] += 1
    return dict(counts)


def kind_counts(judgements: Iterable[SentenceJudgement]) -> dict[str, collections.Counter]:
    """Per entity type, how many entities of each kind: gold entities for
    correct, missed, wrong type and wrong span; predicted ones for spurious,
    and under `predicted` how many were predicted."""
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for judgement in judgements:
        for gold in judgement.gold:
            counts[gold.span.type][gold.kind] += 1
        for predicted in judgement.predicted:
            counts[predicted.span.type]["predicted"] += 1
            if predicted.kind == SPURIOUS:
                counts[predicted.span.type][SPURIOUS] += 1
    return dict(counts)
