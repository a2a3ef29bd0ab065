"""Reading and writing NER corpora: CLUENER2020 JSON lines and column files.

CLUENER2020 (`cluener`): one JSON object a line,
`{"text": ..., "label": {type: {entity: [[start, end], ...]}}}` with
inclusive character offsets; unlabelled files (`{"id", "text"}`) read with
`spans=None`. Column files: one `character tag` line per character (the
tag after the last whitespace run; a space or U+3000 may be the
character), a blank line between sentences, tags in any scheme of
`kner.data.tags`.

Every problem in a file raises `InputError` naming `path:line`. Reading is
strict by default: an invalid tag sequence in gold data is an error, and so
is text UTF-8 cannot encode (a line that is not UTF-8, or a lone surrogate
from a broken JSON `\\u` escape; see `kner.data.files`); `strict=False`
(`--lenient`) repairs both (tags as `kner.data.tags` describes, text by
U+FFFD, one character for one) and logs how many repairs were made.
Writers write a temporary file and rename it at the end
(`kner.data.files.atomic_output`): never an empty or half-written file.

Example:

```python
from kner.data.corpus import read_corpus, write_column

sentences = read_corpus("train.json")  # format and tag scheme detected
sentences[0].text, sentences[0].spans
write_column("train.bioes", sentences, "bioes")
assert read_corpus("train.bioes")[0].spans == sentences[0].spans
```
"""

import dataclasses
import itertools
import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

from kner.data.files import atomic_output, check_text, numbered_lines
from kner.data.spans import Span, find_conflict, flatten_spans
from kner.data.tags import SCHEMES, TagError, detect_scheme, spans_to_tags, tags_to_spans
from kner.errors import InputError

FORMATS = ("cluener", "column")
_LINE_BREAKS = "\n\r"
_logger = logging.getLogger(__name__)


@dataclasses.dataclass(slots=True)
class Sentence:
    """A text and its entity spans (None when unlabelled), with its source
    `path` and first `line` for messages."""

    text: str
    spans: list[Span] | None
    id: str | int | None = None
    path: str | None = None
    line: int | None = None


def _is_cluener(first_line: str) -> bool:
    """True when the first non-blank line opens a JSON object (and is not
    a column line tagging the character `{`)."""
    if not first_line.lstrip().startswith("{"):
        return False
    parts = _split_column_line(first_line)
    return not (parts and parts[0] == "{")


def read_corpus(path: str | Path, fmt: str = "auto", tag_scheme: str = "auto", strict: bool = True) -> list[Sentence]:
    """Reads a corpus file into sentences, streaming it line by line.

    Args:
        path: the file.
        fmt: `cluener`, `column`, or `auto` (JSON objects mean cluener).
        tag_scheme: for column files, one of `kner.data.tags.SCHEMES` or `auto`
            (detected from the tags of the whole file).
        strict: raise on invalid tag sequences and text UTF-8 cannot
            encode; False repairs them.
    """
    if fmt not in ("auto", *FORMATS):
        raise ValueError(f"unknown format {fmt!r}; expected auto or one of {FORMATS}")
    if tag_scheme not in ("auto", *SCHEMES):
        raise ValueError(f"unknown tag scheme {tag_scheme!r}; expected auto or one of {SCHEMES}")
    lines = numbered_lines(path, lenient=not strict)
    if fmt == "auto":
        head = []
        for numbered in lines:  # up to the first non-blank line; an empty file raises here
            head.append(numbered)
            if numbered[1].strip():
                break
        fmt = "cluener" if _is_cluener(head[-1][1]) else "column"
        lines = itertools.chain(head, lines)
    if fmt == "cluener":
        return _parse_cluener(path, lines, strict)
    return _parse_column(path, lines, tag_scheme, strict)


def _parse_cluener(path: str | Path, lines: Iterable[tuple[int, str]], strict: bool) -> list[Sentence]:
    sentences = []
    nested = []
    replaced = []
    for number, line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            message = f"malformed JSON: {error.msg} (column {error.colno})"
            raise InputError(path, number, message) from None
        if not isinstance(record, dict):
            raise InputError(path, number, "expected a JSON object")
        text = record.get("text")
        if not isinstance(text, str):
            raise InputError(path, number, "missing 'text' string")
        spans = None
        if "label" in record:
            try:
                spans = cluener_label_spans(text, record["label"])
                _check_conflicts(text, spans)
            except (TypeError, ValueError) as error:
                raise InputError(path, number, str(error)) from None
            if flatten_spans(spans)[1]:
                nested.append(number)
        text, count = check_text(text, path, number, lenient=not strict)
        record_id = record.get("id")
        if isinstance(record_id, str):
            record_id, more = check_text(record_id, path, number, lenient=not strict, what="id")
            count += more
        for entity_type in {span.type for span in spans or ()}:
            check_text(entity_type, path, number, what="entity type", repairable=False)
        if count:
            replaced.append((number, count))
        sentences.append(Sentence(text, spans, record_id, str(path), number))
    _warn_repaired(path, replaced, "replaced %d lone surrogate(s) with U+FFFD", "line(s)")
    if nested:
        _logger.warning(
            "%s: %d sentence(s) have an entity nested in another (first at line %d); flat tags keep only the outer one",
            path,
            len(nested),
            nested[0],
        )
    return sentences


def cluener_label_spans(text: str, label: object) -> list[Span]:
    """Validated, sorted, deduplicated spans of a CLUENER `label` object
    (overlapping ones included); raises TypeError for a malformed label,
    ValueError for a span outside `text` or not covering its entity string."""
    shape = "'label' must be {type: {entity: [[start, end], ...]}}"
    if not isinstance(label, dict):
        raise TypeError(shape)
    spans = set()
    for entity_type, entities in label.items():
        if not isinstance(entities, dict):
            raise TypeError(shape)
        for entity, positions in entities.items():
            if not isinstance(positions, list) or not all(
                isinstance(pair, list) and len(pair) == 2 and all(type(value) is int for value in pair)
                for pair in positions
            ):
                raise TypeError(f"{entity_type} {entity!r}: {shape}")
            for start, end in positions:
                where = f"span [{start}, {end}] of {entity_type} {entity!r}"
                if not 0 <= start <= end < len(text):
                    raise ValueError(f"{where} is outside the text (length {len(text)})")
                if text[start : end + 1] != entity:
                    raise ValueError(f"{where} covers {text[start : end + 1]!r}")
                spans.add(Span(start, end, entity_type))
    return sorted(spans)


def _check_conflicts(text: str, spans: list[Span]) -> None:
    """ValueError for two spans that cannot both be annotations (`find_conflict`)."""
    conflict = find_conflict(spans)
    if conflict:
        first, second = (f"[{s.start}, {s.end}] {s.type} {text[s.start : s.end + 1]!r}" for s in conflict)
        raise ValueError(f"overlapping spans {first} and {second}")


def _split_column_line(line: str) -> tuple[str, str] | None:
    """`(token, tag)` of a non-blank column line, None when it has no tag.

    The tag follows the last whitespace run; the token is what precedes
    that run, or, when only whitespace precedes the tag, its first
    character (`"  O"` tags a space, `"\u3000 O"` an ideographic space).
    """
    body = line.rstrip()
    tag = body.split()[-1]
    head = body[: len(body) - len(tag)]
    if head.strip():
        return head.strip(), tag
    return (head[0], tag) if len(head) > 1 else None


def _column_blocks(path: str | Path, lines: Iterable[tuple[int, str]]) -> Iterator[tuple[int, str, tuple[str, ...]]]:
    """Yields `(first line number, text, tags)` per sentence of a column
    file; equal tags are one shared string, so a sentence costs little more
    than its text."""
    shared_tags = {}
    first, characters, tags = 0, [], []
    for number, line in itertools.chain(lines, [(0, "")]):
        if not line.strip():
            if characters:
                yield first, "".join(characters), tuple(tags)
            first, characters, tags = 0, [], []
            continue
        parts = _split_column_line(line)
        if parts is None:
            raise InputError(path, number, f"expected 'character tag', got {line!r}")
        if len(parts[0]) != 1:
            message = f"expected one character before the tag, got {parts[0]!r}"
            raise InputError(path, number, message)
        first = first or number
        characters.append(parts[0])
        tags.append(shared_tags.setdefault(parts[1], parts[1]))


def _parse_column(path: str | Path, lines: Iterable[tuple[int, str]], tag_scheme: str, strict: bool) -> list[Sentence]:
    blocks = list(_column_blocks(path, lines))
    if tag_scheme == "auto":
        tag_scheme = detect_scheme({tag for _, _, tags in blocks for tag in tags})
    sentences = []
    repairs = []
    for first, text, tags in blocks:
        try:
            spans, repaired = tags_to_spans(tags, tag_scheme, strict)
        except TagError as error:
            message = error.message if error.repair is None else f"{error.message}; --lenient {error.repair}"
            raise InputError(path, first + error.position, message) from None
        if repaired:
            repairs.append((first, repaired))
        sentences.append(Sentence(text, spans, None, str(path), first))
    _warn_repaired(path, repairs, f"repaired %d invalid {tag_scheme} tag(s)", "sentence(s)")
    return sentences


def _warn_repaired(path: Path, repairs: list[tuple[int, int]], what: str, where: str) -> None:
    """Logs one warning for the `--lenient` repairs of a file, given as
    (first line, repairs there): "<path>: <what, with the total> in <N>
    <where> (first at line <L>)"; nothing when there were none."""
    if repairs:
        total = sum(count for _, count in repairs)
        message = f"%s: {what} in %d {where} (first at line %d)"
        _logger.warning(message, path, total, len(repairs), repairs[0][0])


def _cluener_label(sentence: Sentence) -> dict[str, dict[str, list[list[int]]]]:
    label = {}
    for start, end, entity_type in sorted(set(sentence.spans)):
        if not 0 <= start <= end < len(sentence.text):
            raise ValueError(f"span [{start}, {end}] is outside {sentence.text!r}")
        entity = sentence.text[start : end + 1]
        label.setdefault(entity_type, {}).setdefault(entity, []).append([start, end])
    return label


def write_cluener(path: str | Path, sentences: Iterable[Sentence], submission: bool = False) -> None:
    """Writes CLUENER2020 JSON lines.

    Records are `{"id", "text", "label"}`, leaving out an id that is None
    and a label of an unlabelled sentence. With `submission=True` they are
    the leaderboard's `{"id", "label"}` and every sentence needs an id and
    spans. Type names are written as they are: the leaderboard's example
    file spells `goverment`, the dataset itself `government`.
    """
    with atomic_output(path) as out:
        for sentence in sentences:
            if submission:
                if sentence.id is None or sentence.spans is None:
                    raise ValueError("a submission needs an id and spans per sentence")
                record = {"id": sentence.id, "label": _cluener_label(sentence)}
            else:
                record = {"text": sentence.text}
                if sentence.id is not None:
                    record = {"id": sentence.id, **record}
                if sentence.spans is not None:
                    record["label"] = _cluener_label(sentence)
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


def write_column(path: str | Path, sentences: Iterable[Sentence], scheme: str) -> None:
    """Writes `character tag` lines in `scheme`, a blank line after each
    sentence. Nested spans keep only the outer one (see
    `kner.data.spans.flatten_spans`); unlabelled sentences and texts holding a
    line break raise ValueError."""
    with atomic_output(path) as out:
        for index, sentence in enumerate(sentences):
            if sentence.spans is None:
                raise ValueError(f"sentence {index} is unlabelled")
            if any(character in _LINE_BREAKS for character in sentence.text):
                raise ValueError(f"sentence {index} holds a line break")
            tags = spans_to_tags(sentence.spans, len(sentence.text), scheme)
            out.writelines(f"{char} {tag}\n" for char, tag in zip(sentence.text, tags, strict=True))
            out.write("\n")
