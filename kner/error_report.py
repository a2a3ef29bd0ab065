"""The visual error report: one self-contained HTML page of a model's mistakes.

The page (no network: its CSS and JavaScript are inline) holds the micro and
per-type precision, recall and F1 of `kner.metrics` (the scorer's numbers,
each cell's exact value in `data-value`), the count of each error kind per
type, the type-confusion matrix and the boundary errors of
`kner.error_kinds`, and every sentence with its gold and predicted entities
side by side in the way of spaCy's displaCy, the worst first (most entities
not correct), 50 to a page. Each entity is a `<mark>` with `data-type` and
`data-kind` (`correct`, `missed`, `spurious`, `wrong-type`, `wrong-span`);
nested entities are marks inside marks, and entities that cross another are
drawn on a second line of the same text. A text of more than 600 characters
shows only the stretches around its entities until it is expanded.

The filter lives in the URL fragment, so a link reproduces a view:
`report.html#type=name&kind=missed` (`kind=errors`: every kind but correct;
`page=N`). Texts and types reach the page as JSON inside a script element
(every `<`, `>`, `&`, U+2028 and U+2029 escaped) and the script writes them
with `textContent`; the tables are HTML-escaped. Nothing in a text can end
the script or add markup.

Example:

```python
from kner.error_report import write_report

write_report("report.html", gold_sentences, predicted_spans, title="dev, epoch 3")
```
"""

from __future__ import annotations

import colorsys
import html
import json
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlencode

from kner.data.corpus import Sentence
from kner.data.files import write_text
from kner.data.spans import Span
from kner.error_kinds import (
    BOUNDARIES,
    CORRECT,
    KINDS,
    MISSED,
    SPURIOUS,
    WRONG_SPAN,
    WRONG_TYPE,
    Judged,
    boundary_errors,
    confusion,
    judge_all,
    kind_counts,
)
from kner.metrics import evaluate

ASSETS = Path(__file__).with_name("assets")
# displaCy's entity colours, then hues a golden angle apart.
PALETTE = ("#7aecec", "#bfeeb7", "#feca74", "#ff9561", "#aa9cfc", "#c887fb", "#9cc9cc", "#ffeb80", "#ff8197", "#e4e7d2")
_SCRIPT_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_NONE = "(none)"


def type_colour(index: int) -> str:
    if index < len(PALETTE):
        return PALETTE[index]
    red, green, blue = colorsys.hls_to_rgb((index * 0.381966) % 1.0, 0.8, 0.75)
    return f"#{round(red * 255):02x}{round(green * 255):02x}{round(blue * 255):02x}"


def script_json(value: object) -> str:
    """`value` as JSON that can stand inside a `<script>` element: no `<`,
    `>` or `&` (so no `</script>` or `<!--`), no raw U+2028/U+2029."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return "".join(_SCRIPT_ESCAPES.get(character, character) for character in text)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _link(text: object, **fragment: str) -> str:
    """A link that sets the sentence filter (`#type=...&kind=...`)."""
    return f'<a href="#{_e(urlencode(fragment))}">{_e(text)}</a>'


def render(
    sentences: Sequence[Sentence],
    predicted: Sequence[Sequence[Span]],
    title: str = "kner error report",
    subtitle: str = "",
    scores: dict | None = None,
) -> str:
    """The report page of labelled `sentences` and the `predicted` spans of
    each, as HTML text.

    Args:
        sentences: gold sentences (text and spans; `path`, `line` and `id`
            label the rows when set).
        predicted: one list of spans per sentence (end inclusive).
        title, subtitle: the page's heading and the line under it.
        scores: `kner.metrics.evaluate`'s report of these sentences, when the
            caller has it (with seqeval's scores, say); default: computed.
    Raises:
        ValueError: an unlabelled sentence, not one prediction per sentence, or
            a span outside its text.
    """
    if any(s.spans is None for s in sentences):
        raise ValueError("every sentence needs its gold spans")
    gold = [s.spans for s in sentences]
    for index, (sentence, spans) in enumerate(zip(sentences, predicted, strict=True)):
        for side, side_spans in (("gold", sentence.spans), ("predicted", spans)):
            for span in side_spans:
                if not 0 <= span.start <= span.end < len(sentence.text):
                    where = f"{side} span [{span.start}, {span.end}] is outside sentence {index}"
                    raise ValueError(f"{where} (length {len(sentence.text)})")
    if scores is None:
        scores = evaluate([s.text for s in sentences], gold, predicted)
    judgements = judge_all(gold, predicted)
    types = sorted({j.span.type for judgement in judgements for j in (*judgement.gold, *judgement.predicted)})
    colours = {t: type_colour(i) for i, t in enumerate(types)}
    rows = sorted(range(len(sentences)), key=lambda i: (-judgements[i].errors, i))
    code = {t: i for i, t in enumerate(types)}

    def entity(judged: Judged) -> list:
        partner = judged.partner if judged.kind in (WRONG_TYPE, WRONG_SPAN) else None
        where = [partner.start, partner.end, code[partner.type]] if partner else []
        return [judged.span.start, judged.span.end, code[judged.span.type], KINDS.index(judged.kind), *where]

    data = {
        "types": types,
        "colours": [colours[t] for t in types],
        "kinds": list(KINDS),
        "rows": [
            [
                i,
                _row_label(i, sentences[i]),
                sentences[i].text,
                [entity(j) for j in judgements[i].gold],
                [entity(j) for j in judgements[i].predicted],
                judgements[i].errors,
            ]
            for i in rows
        ],
    }
    with_errors = sum(1 for judgement in judgements if judgement.errors)
    sections = [
        _scores_table(scores, kind_counts(judgements), colours),
        _confusion_table(confusion(judgements), types, colours),
        _boundary_table(boundary_errors(judgements), colours),
        _sentences_section(types, len(sentences), with_errors),
    ]
    return (
        (ASSETS / "error_report.html")
        .read_text(encoding="utf-8")
        .format(
            title=_e(title),
            subtitle=_e(subtitle),
            css=(ASSETS / "error_report.css").read_text(encoding="utf-8"),
            body="\n".join(sections),
            data=script_json(data),
            script=(ASSETS / "error_report.js").read_text(encoding="utf-8"),
        )
    )


def write_report(
    path: str | Path,
    sentences: Sequence[Sentence],
    predicted: Sequence[Sequence[Span]],
    title: str = "kner error report",
    subtitle: str = "",
    scores: dict | None = None,
) -> None:
    """Writes `render(...)` to `path`, whole or not at all."""
    write_text(path, render(sentences, predicted, title, subtitle, scores))


def _row_label(index: int, sentence: Sentence) -> str:
    label = f"line {sentence.line}" if sentence.line is not None else f"#{index + 1}"
    return label if sentence.id is None else f"{label}, id {sentence.id}"


def _swatch(entity_type: str, colours: dict[str, str]) -> str:
    return (
        f'<span class="swatch" style="background:{colours[entity_type]}"></span>{_link(entity_type, type=entity_type)}'
    )


def _number(metric: str, value: float) -> str:
    return f'<td data-metric="{metric}" data-value="{value!r}">{value:.4f}</td>'


def _scores_table(scores: dict, counts: dict, colours: dict[str, str]) -> str:
    kinds = (MISSED, WRONG_TYPE, WRONG_SPAN, SPURIOUS)
    head = "".join(f"<th>{h}</th>" for h in ("precision", "recall", "F1", "gold", "predicted", "correct"))
    head += "".join(f"<th>{k.replace('-', ' ')}</th>" for k in kinds)
    rows = []
    for entity_type, values in scores["per_type"].items():
        count = counts.get(entity_type, {})
        cells = [_number(m, values[m]) for m in ("precision", "recall", "f1")]
        cells += [f'<td data-metric="support">{values["support"]}</td>']
        cells += [f'<td data-metric="predicted">{count.get("predicted", 0)}</td>']
        cells += [f'<td data-metric="correct">{count.get(CORRECT, 0)}</td>']
        cells += [
            f'<td data-metric="{k}">{_link(count[k], type=entity_type, kind=k) if count.get(k) else 0}</td>'
            for k in kinds
        ]
        rows.append(
            f'<tr data-scores="{_e(entity_type)}"><th>{_swatch(entity_type, colours)}</th>{"".join(cells)}</tr>'
        )
    total = {k: sum(c.get(k, 0) for c in counts.values()) for k in ("predicted", CORRECT, *kinds)}
    micro = [_number(m, scores["micro"][m]) for m in ("precision", "recall", "f1")]
    micro += [f'<td data-metric="support">{scores["micro"]["support"]}</td>']
    micro += [f'<td data-metric="{k}">{total[k]}</td>' for k in ("predicted", CORRECT)]
    micro += [f'<td data-metric="{k}">{_link(total[k], kind=k) if total[k] else 0}</td>' for k in kinds]
    rows.append(f'<tr data-scores="micro" class="total"><th>micro</th>{"".join(micro)}</tr>')
    notes = [("type_macro_f1", "macro F1 over the gold types (exact spans)", scores["type_macro_f1"])]
    if "cluener_score_f1" in scores:
        notes.append(("cluener_score_f1", "CLUENER score.py F1 (entity strings)", scores["cluener_score_f1"]))
    if "seqeval" in scores:
        notes.append(("seqeval_f1", "seqeval strict F1 (the model's tags)", scores["seqeval"]["f1-score"]))
    lines = "".join(
        f'<li>{_e(text)}: <b data-metric="{name}" data-value="{value!r}">{value:.4f}</b></li>'
        for name, text, value in notes
    )
    return (
        '<section id="scores"><h2>Scores</h2>'
        "<p>Exact spans: an entity is correct when its start, end and type equal a gold entity's "
        "(<code>kner.metrics</code>). Error counts are of gold entities, spurious ones of predictions; "
        "each links to its sentences.</p>"
        f'<table class="numbers"><thead><tr><th>type</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
        f'<ul class="notes">{lines}</ul></section>'
    )


def _confusion_table(counts, types: list[str], colours: dict[str, str]) -> str:
    gold_types = [t for t in types if any(counts.get((t, p)) for p in (*types, None))]
    columns = [*types, None]
    largest = max(counts.values(), default=1)
    head = "".join(f"<th>{_e(t)}</th>" for t in types) + f"<th>{_NONE}<br><small>missed</small></th>"
    rows = []
    for gold in [*gold_types, None]:
        cells = []
        for predicted in columns:
            count = counts.get((gold, predicted), 0)
            if gold is None and predicted is None:
                cells.append('<td class="void"></td>')
                continue
            attributes = f'data-gold="{_e(gold or "")}" data-predicted="{_e(predicted or "")}"'
            if not count:
                cells.append(f'<td {attributes} class="zero">·</td>')
                continue
            shade = f' style="--v:{0.12 + 0.6 * count / largest:.2f}"'
            if gold == predicted:
                cells.append(f'<td {attributes} class="agree"{shade}>{count}</td>')
            else:
                kind = MISSED if predicted is None else SPURIOUS if gold is None else WRONG_TYPE
                cell = _link(count, type=gold or predicted, kind=kind)
                cells.append(f'<td {attributes} class="error"{shade}>{cell}</td>')
        name = _swatch(gold, colours) if gold else f"{_NONE}<br><small>spurious</small>"
        rows.append(f"<tr><th>{name}</th>{''.join(cells)}</tr>")
    return (
        '<section id="confusion"><h2>Type confusion</h2>'
        "<p>Rows: gold type; columns: predicted type. Each gold entity counts once, under the type of the "
        "prediction that matches or overlaps it (its own type first), or under (none) when nothing does; "
        "a row adds up to the gold count of its type. The diagonal holds exact matches and boundary errors; "
        "the last row counts predictions that overlap no gold entity.</p>"
        f'<table class="confusion"><thead><tr><th>gold \\ predicted</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def _boundary_table(counts: dict, colours: dict[str, str]) -> str:
    head = "".join(f"<th>{b}</th>" for b in BOUNDARIES)
    rows = []
    for entity_type in sorted(counts):
        count = counts[entity_type]
        cells = "".join(f'<td data-boundary="{b}">{count.get(b, 0)}</td>' for b in BOUNDARIES)
        total = _link(sum(count.values()), type=entity_type, kind=WRONG_SPAN)
        rows.append(
            f'<tr data-type="{_e(entity_type)}"><th>{_swatch(entity_type, colours)}</th>'
            f'<td data-boundary="total">{total}</td>{cells}</tr>'
        )
    if not rows:
        rows.append(f'<tr><td colspan="{len(BOUNDARIES) + 2}">no boundary errors</td></tr>')
    return (
        '<section id="boundaries"><h2>Boundary errors</h2>'
        "<p>Gold entities predicted with the right type and the wrong span: the prediction is longer "
        "(contains it), shorter (lies inside it) or crossing.</p>"
        f'<table class="numbers"><thead><tr><th>type</th><th>wrong span</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def _sentences_section(types: list[str], total: int, with_errors: int) -> str:
    type_options = "".join(f'<option value="{_e(t)}">{_e(t)}</option>' for t in types)
    kind_options = "".join(f'<option value="{k}">{k.replace("-", " ")}</option>' for k in KINDS)
    legend = "".join(f'<span class="entity" data-kind="{k}">{k.replace("-", " ")}</span> ' for k in KINDS)
    return (
        '<section id="sentences"><h2>Sentences</h2>'
        f"<p>{total} sentences, {with_errors} with errors, the worst first. Gold entities on the left, "
        "predicted ones on the right; an entity inside another is drawn inside it, one that crosses "
        "another on a line of its own. Hover over an entity for its span and what it was paired with.</p>"
        f'<p class="legend">{legend}</p>'
        '<form class="filters" onsubmit="return false">'
        f'<label>type <select id="filter-type"><option value="">all types</option>{type_options}</select></label> '
        '<label>kind <select id="filter-kind"><option value="">all sentences</option>'
        f'<option value="errors">any error</option>{kind_options}</select></label> '
        '<span id="shown"></span></form>'
        '<nav class="pager" id="pager-top"></nav><div id="rows"></div><nav class="pager" id="pager-bottom"></nav>'
        "<noscript><p>The sentences are drawn by the page's script: allow JavaScript for this file.</p></noscript>"
        "</section>"
    )
