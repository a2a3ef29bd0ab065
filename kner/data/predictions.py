"""Predictions read back beside their gold data, from the files `kner.predict` writes.

Formats, detected from the file:

- JSON lines, one record per text, in each of `kner.predict`'s output
  formats: `jsonl` (`{"id"?, "text", "entities": [{"type", "start", "end",
  "text"?, "score"?}]}`, `end` inclusive), `cluener` (`{"id"?, "text",
  "label": {type: {entity: [[start, end], ...]}}}`) and `submission`
  (CLUENER2020's leaderboard format `{"id", "label"}`, without the text);
- CMeEE JSON (`--output_format=cmeee`: one list of `{"text", "entities"}`)
  or a column file (`character tag` lines), both read by
  `kner.data.corpus.read_corpus`.

Joining: when every record has an `id`, each joins the gold sentence with
that id, a gold sentence without one being known by its 0-based position (as
`kner.predict` numbers a submission's texts); otherwise record i answers gold
sentence i. Every gold sentence needs exactly one prediction. A record's text,
where it has one, must equal its gold sentence's, and every entity must lie
in that text and cover its `text`/entity string. Predicted spans may overlap
or nest (a GlobalPointer predicts such), and exact duplicates count once.
Every problem raises `InputError` naming `path:line`.

Example:

```python
from kner.data.corpus import read_corpus
from kner.data.predictions import read_predictions

gold = read_corpus("dev.json")
predicted, joined = read_predictions("submission.json", gold)  # joined == "by id"
assert len(predicted) == len(gold)
```
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from pathlib import Path

from kner.data.corpus import Sentence, cluener_label_spans, detect_format, read_corpus
from kner.data.files import check_text, numbered_lines
from kner.data.spans import Span
from kner.errors import InputError

_COLUMN_BRACE = re.compile(r"\s*\{\s+\S+\s*$")
_RECORD = "expected 'entities' (kner.predict --output_format=jsonl) or 'label' (cluener, submission)"
_ENTITY = 'expected {"type": string, "start": int, "end": int} (end inclusive)'


@dataclasses.dataclass(slots=True)
class _Record:
    """One prediction: a JSON line, its spans parsed once the gold text is
    known, or a column file's sentence, its spans read with it."""

    line: int
    id: object
    text: str | None
    entities: object = None
    label: object = None
    spans: list[Span] | None = None


def read_predictions(path: str | Path, gold: Sequence[Sentence], lenient: bool = False) -> tuple[list[list[Span]], str]:
    """The predicted spans of each gold sentence, in gold order, and how they
    were joined (`"by id"` or `"by position"`); see the module doc.

    `lenient` replaces text UTF-8 cannot encode by U+FFFD, as
    `read_corpus(strict=False)` does for the gold file.
    """
    lines = numbered_lines(path, lenient)
    first = next((n, line) for n, line in lines if line.strip())  # a blank file raises InputError
    if not _is_json_object(first[1]):
        lines.close()
        fmt = "cmeee" if detect_format(path) == "cmeee" else "column"
        sentences = read_corpus(path, fmt, strict=not lenient)
        records = [_Record(s.line, None, s.text, spans=s.spans) for s in sentences]
        return _join_by_position(path, gold, records), "by position"
    records = [_record(path, *first, lenient)]
    records += [_record(path, n, line, lenient) for n, line in lines if line.strip()]
    if all(record.id is not None for record in records):
        return _join_by_id(path, gold, records), "by id"
    return _join_by_position(path, gold, records), "by position"


def _is_json_object(line: str) -> bool:
    """Whether a first line opens a JSON object (and is not a column line
    tagging the character `{`)."""
    return line.lstrip().startswith("{") and not _COLUMN_BRACE.match(line)


def _record(path: str | Path, number: int, line: str, lenient: bool) -> _Record:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise InputError(path, number, f"malformed JSON: {error.msg} (column {error.colno})") from None
    if not isinstance(record, dict):
        raise InputError(path, number, "expected a JSON object")
    if ("entities" in record) == ("label" in record):
        raise InputError(path, number, _RECORD)
    text = record.get("text")
    if text is not None:
        if not isinstance(text, str):
            raise InputError(path, number, "'text' must be a string")
        text = check_text(text, path, number, lenient)[0]
    return _Record(number, record.get("id"), text, record.get("entities"), record.get("label"))


def _spans(path: str | Path, record: _Record, text: str) -> list[Span]:
    """The record's spans, checked against the gold `text`."""
    if record.spans is not None:
        return record.spans
    try:
        if record.label is not None:
            spans = cluener_label_spans(text, record.label)
        else:
            spans = _entity_spans(text, record.entities)
    except (TypeError, ValueError) as error:
        raise InputError(path, record.line, str(error)) from None
    for entity_type in {span.type for span in spans}:
        check_text(entity_type, path, record.line, what="entity type", repairable=False)
    return spans


def _entity_spans(text: str, entities: object) -> list[Span]:
    if not isinstance(entities, list):
        raise TypeError(f"'entities' must be a list: {_ENTITY}")
    spans = set()
    for entity in entities:
        if not (
            isinstance(entity, dict)
            and isinstance(entity.get("type"), str)
            and all(type(entity.get(key)) is int for key in ("start", "end"))
        ):
            raise TypeError(f"entity {entity!r}: {_ENTITY}")
        span = Span(entity["start"], entity["end"], entity["type"])
        where = f"entity [{span.start}, {span.end}] {span.type}"
        if not 0 <= span.start <= span.end < len(text):
            raise ValueError(f"{where} is outside the text (length {len(text)})")
        covered = text[span.start : span.end + 1]
        if "text" in entity and entity["text"] != covered:
            raise ValueError(f"{where} is {entity['text']!r} but the text there is {covered!r}")
        spans.add(span)
    return sorted(spans)


def _check_same_text(path: str | Path, line: int, text: str | None, sentence: Sentence) -> None:
    if text is not None and text != sentence.text:
        where = f"{sentence.path}:{sentence.line}" if sentence.path else "its gold sentence"
        raise InputError(
            path, line, f"text {_excerpt(text)} differs from the gold text at {where}: {_excerpt(sentence.text)}"
        )


def _excerpt(text: str, limit: int = 30) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")


def _join_by_position(path: str | Path, gold: Sequence[Sentence], records: list[_Record]) -> list[list[Span]]:
    joined = []
    for record, sentence in zip(records, gold):
        _check_same_text(path, record.line, record.text, sentence)
        joined.append(_spans(path, record, sentence.text))
    if len(records) != len(gold):
        message = f"{len(records)} predictions for {len(gold)} gold sentences (line i answers gold sentence i "
        raise InputError(path, None, message + "unless every record has an id)")
    return joined


def _join_by_id(path: str | Path, gold: Sequence[Sentence], records: list[_Record]) -> list[list[Span]]:
    index: dict[str, int] = {}
    for position, sentence in enumerate(gold):
        key = str(position if sentence.id is None else sentence.id)
        if key in index:
            first = gold[index[key]]
            message = f"id {key!r} repeats line {first.line}: predictions join gold sentences by id"
            raise InputError(sentence.path or "gold", sentence.line, message)
        index[key] = position
    joined: list[list[Span] | None] = [None] * len(gold)
    lines: dict[int, int] = {}
    for record in records:
        position = index.get(str(record.id))
        if position is None:
            raise InputError(path, record.line, f"id {record.id!r} is not in the gold data")
        if position in lines:
            raise InputError(path, record.line, f"id {record.id!r} repeats line {lines[position]}")
        sentence = gold[position]
        _check_same_text(path, record.line, record.text, sentence)
        joined[position], lines[position] = _spans(path, record, sentence.text), record.line
    missing = [position for position, spans in enumerate(joined) if spans is None]
    if missing:
        sentence = gold[missing[0]]
        key = missing[0] if sentence.id is None else sentence.id
        message = f"no prediction for {len(missing)} of {len(gold)} gold sentences, the first with id {key!r}"
        raise InputError(path, None, message + (f" ({sentence.path}:{sentence.line})" if sentence.path else ""))
    return joined
