"""Reading and writing NER corpora: CLUENER2020 JSON lines, CMeEE JSON,
character column files and CoNLL word column files.

CLUENER2020 (`cluener`): one JSON object a line,
`{"text": ..., "label": {type: {entity: [[start, end], ...]}}}` with
inclusive character offsets; unlabelled files (`{"id", "text"}`) read with
`spans=None`. CMeEE (`cmeee`, CBLUE's medical NER, github.com/CBLUEbenchmark/CBLUE):
one JSON list of `{"text", "entities": [{"start_idx", "end_idx", "type",
"entity"}]}`, `end_idx` inclusive, entities kept in file order (records
without `entities` are unlabelled); errors name the record's index in the
list (from 0) and its line; `--lenient` (`strict=False`) drops an empty
entity (`end_idx = start_idx - 1`, `""`; CBLUE's train has two). Character
column files (`column`): one `character tag` line
per character (the tag after the last whitespace run; a space or U+3000
may be the character), a blank line between sentences, tags in any scheme
of `kner.data.tags`.

CoNLL files (`conll`: CoNLL-2003, WNUT-17, OntoNotes in CoNLL columns): one
word a line, columns separated by spaces or tabs, the word in the first
column and the tag in the last, any number of columns between (the same on
every line); a blank or whitespace-only line ends a sentence (WNUT-17's
train marks most breaks with a lone tab), and `-DOCSTART-` lines (CoNLL-2003's
document breaks) are skipped. A sentence's text is its words joined by one
space, its spans are character offsets into that text, and it keeps each
word's offsets (`Sentence.words`; `kner.data.words`). Tags may be IOB1
(`tag_scheme="iob1"`, CoNLL-2003's original release), read as the IOB2
tags of the same spans. `auto` tells the two column formats apart by the
first sentence: a token longer than one character, or a `-DOCSTART-` line,
means CoNLL.

Every span a JSON file holds is kept: nested, crossing, and the same
extent under two types (`kner.data.spans`); which heads can train on them
is the trainer's business (`kner.cli.check_spans`).

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

wnut = read_corpus("../shared/data/wnut17/train.conll")  # detected: conll, bio
wnut[0].words  # [(0, 10), (11, 13), ...]: each word's [start, end) in wnut[0].text
write_column("train.bioes.conll", wnut, "bioes")  # one `word tag` line per word
write_cmeee("train_cmeee.json", sentences)
```
"""

import dataclasses
import itertools
import json
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from kner.data.files import atomic_output, check_text, numbered_lines
from kner.data.spans import Span, flatten_spans
from kner.data.tags import INPUT_SCHEMES, IOB1, TagError, detect_scheme, iob1_to_iob2, spans_to_tags, tags_to_spans
from kner.data.words import char_spans, join_words, word_spans
from kner.errors import InputError

FORMATS = ("cluener", "cmeee", "column", "conll")
DOCSTART = "-DOCSTART-"
_LINE_BREAKS = "\n\r"
_CONLL_COLUMNS = re.compile("[ \t]+")
# A JSON list of records: `[` alone on the first line, or followed by `{`.
_JSON_LIST = re.compile(r"^\s*\[\s*(\{|$)")
# How far `auto` reads to tell character columns from CoNLL words: the first sentence, at most this many lines.
_DETECTION_LINES = 1000
_logger = logging.getLogger(__name__)


@dataclasses.dataclass(slots=True)
class Sentence:
    """A text and its entity spans (None when unlabelled), with its source
    `path` and first `line` for messages. A sentence read from words (CoNLL)
    has `words`, each word's `[start, end)` character offsets in `text`
    (`kner.data.words`); None for character-level data."""

    text: str
    spans: list[Span] | None
    id: str | int | None = None
    path: str | None = None
    line: int | None = None
    words: list[tuple[int, int]] | None = None


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
        fmt: `cluener`, `cmeee`, `column`, `conll`, or `auto` (JSON objects
            mean cluener, a JSON list cmeee; else the first sentence tells
            column from conll, see the module doc).
        tag_scheme: for column and CoNLL files, one of
            `kner.data.tags.INPUT_SCHEMES` or `auto` (detected from the tags
            of the whole file; IOB1 is never guessed, it must be given).
        strict: raise on invalid tag sequences and text UTF-8 cannot
            encode; False repairs them.
    """
    if fmt not in ("auto", *FORMATS):
        raise ValueError(f"unknown format {fmt!r}; expected auto or one of {FORMATS}")
    if tag_scheme not in ("auto", *INPUT_SCHEMES):
        raise ValueError(f"unknown tag scheme {tag_scheme!r}; expected auto or one of {INPUT_SCHEMES}")
    lines = numbered_lines(path, lenient=not strict)
    if fmt == "auto":
        head, fmt = _detect_format(lines)
        lines = itertools.chain(head, lines)
    if fmt == "cluener":
        return _parse_cluener(path, lines, strict)
    if fmt == "cmeee":
        return _parse_cmeee(path, lines, strict)
    blocks = _column_blocks(path, lines) if fmt == "column" else _conll_blocks(path, lines)
    return _parse_tagged(path, list(blocks), tag_scheme, strict)


def _detect_format(lines: Iterator[tuple[int, str]]) -> tuple[list[tuple[int, str]], str]:
    """The format of a file from its first lines (module doc), and the lines
    read to tell it; an empty file raises here."""
    head = []
    for numbered in lines:  # up to the first non-blank line
        head.append(numbered)
        if numbered[1].strip():
            break
    if _is_cluener(head[-1][1]):
        return head, "cluener"
    if _JSON_LIST.match(head[-1][1]):
        return head, "cmeee"
    line = head[-1][1]
    while len(head) < _DETECTION_LINES and line.strip():
        parts = _split_column_line(line)
        if line.split()[0] == DOCSTART or (parts is not None and len(parts[0]) != 1):
            return head, "conll"
        numbered = next(lines, None)
        if numbered is None:
            break
        head.append(numbered)
        line = numbered[1]
    return head, "column"


def detect_format(path: str | Path) -> str:
    """The format `read_corpus(fmt="auto")` reads `path` as (module doc)."""
    return _detect_format(numbered_lines(path, lenient=True))[1]


def _parse_cluener(path: str | Path, lines: Iterable[tuple[int, str]], strict: bool) -> list[Sentence]:
    sentences = []
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
            except (TypeError, ValueError) as error:
                raise InputError(path, number, str(error)) from None
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


def _records(path: str | Path, lines: Iterable[tuple[int, str]]) -> Iterator[tuple[int, int, object]]:
    """(index, first line, value) of each element of a file holding one JSON
    list, decoded one element at a time so that errors name their line."""
    text = "\n".join(line for _, line in lines)
    decoder = json.JSONDecoder()
    position, line = 0, 1

    def skip(at: int) -> int:
        while at < len(text) and text[at] in " \t\r\n":
            at += 1
        return at

    def line_at(at: int) -> int:
        nonlocal position, line
        line += text.count("\n", position, at)
        position = at
        return line

    def fail(at: int, message: str) -> InputError:
        return InputError(path, line_at(at), message)

    at = skip(0)
    if text[at : at + 1] != "[":
        raise fail(at, 'expected a JSON list of {"text", "entities"} records (CMeEE)')
    at, index = skip(at + 1), 0
    if text[at : at + 1] == "]":
        return
    while True:
        try:
            value, end = decoder.raw_decode(text, at)
        except json.JSONDecodeError as error:
            message = f"record {index}: malformed JSON: {error.msg} (column {error.colno})"
            raise InputError(path, error.lineno, message) from None
        yield index, line_at(at), value
        at = skip(end)
        if text[at : at + 1] == "]":
            if skip(at + 1) < len(text):
                raise fail(skip(at + 1), "extra data after the list")
            return
        if text[at : at + 1] != ",":
            raise fail(at, f"record {index}: expected ',' or ']' after it")
        at, index = skip(at + 1), index + 1


_CMEEE_ENTITY = {"start_idx": int, "end_idx": int, "type": str, "entity": str}


def _cmeee_spans(text: str, entities: object, strict: bool) -> tuple[list[Span], int]:
    """The spans of a CMeEE record's `entities`, in order, and how many empty
    entities were dropped (not `strict`); ValueError names the first bad
    one."""
    if not isinstance(entities, list):
        raise ValueError("'entities' must be a list")
    spans, dropped = [], 0
    for k, entity in enumerate(entities):
        shape = "must be {" + ", ".join(f'"{name}": {kind.__name__}' for name, kind in _CMEEE_ENTITY.items()) + "}"
        if not isinstance(entity, dict) or any(type(entity.get(n)) is not t for n, t in _CMEEE_ENTITY.items()):
            raise ValueError(f"entity {k} {shape}")
        start, end, entity_type = entity["start_idx"], entity["end_idx"], entity["type"]
        where = f"entity {k} [{start}, {end}] {entity_type} {entity['entity']!r}"
        empty = end == start - 1 and not entity["entity"]  # two of them in CBLUE's CMeEE train
        if empty and not strict:
            dropped += 1
            continue
        if end < start:
            hint = "; --lenient drops an empty entity (end_idx = start_idx - 1)" if empty else ""
            raise ValueError(f"{where}: end_idx is before start_idx{hint}")
        if not 0 <= start <= end < len(text):
            raise ValueError(f"{where} is outside the text (length {len(text)})")
        if text[start : end + 1] != entity["entity"]:
            raise ValueError(f"{where} covers {text[start : end + 1]!r}")
        spans.append(Span(start, end, entity_type))
    return spans, dropped


def _parse_cmeee(path: str | Path, lines: Iterable[tuple[int, str]], strict: bool) -> list[Sentence]:
    sentences, replaced, dropped = [], [], []
    for index, number, record in _records(path, lines):
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise InputError(path, number, f'record {index}: expected an object with a "text" string')
        text, spans = record["text"], None
        if "entities" in record:
            try:
                spans, empty = _cmeee_spans(text, record["entities"], strict)
            except ValueError as error:
                raise InputError(path, number, f"record {index}: {error}") from None
            if empty:
                dropped.append((number, empty))
            for entity_type in {span.type for span in spans}:
                check_text(entity_type, path, number, what="entity type", repairable=False)
        text, count = check_text(text, path, number, lenient=not strict)
        if count:
            replaced.append((number, count))
        sentences.append(Sentence(text, spans, None, str(path), number))
    if not sentences:
        raise InputError(path, None, "the list holds no records")
    _warn_repaired(path, replaced, "replaced %d lone surrogate(s) with U+FFFD", "record(s)")
    _warn_repaired(path, dropped, "dropped %d empty entities (end_idx = start_idx - 1)", "record(s)")
    return sentences


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
    file (the text is the sentence's characters); equal tags are one shared
    string, so a sentence costs little more than its text."""
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
            message = f"expected one character before the tag, got {parts[0]!r} (one word a line? --input_format=conll)"
            raise InputError(path, number, message)
        first = first or number
        characters.append(parts[0])
        tags.append(shared_tags.setdefault(parts[1], parts[1]))


def _conll_blocks(
    path: str | Path, lines: Iterable[tuple[int, str]]
) -> Iterator[tuple[int, tuple[str, ...], tuple[str, ...]]]:
    """Yields `(first line number, words, tags)` per sentence of a CoNLL
    file (module doc); raises InputError for a line without a tag column or
    with another number of columns than the first line."""
    shared_tags = {}
    width, width_line = None, 0
    first, words, tags = 0, [], []
    for number, line in itertools.chain(lines, [(0, "")]):
        columns = _CONLL_COLUMNS.split(line.strip(" \t")) if line.strip() else []
        if not columns or columns[0] == DOCSTART:
            if words:
                yield first, tuple(words), tuple(tags)
            first, words, tags = 0, [], []
            continue
        if len(columns) < 2:
            raise InputError(path, number, f"missing tag column: expected 'word tag' (the tag last), got {line!r}")
        if width is None:
            width, width_line = len(columns), number
        elif len(columns) != width:
            message = f"{len(columns)} columns, but line {width_line} has {width} (mixed column counts)"
            raise InputError(path, number, message)
        first = first or number
        words.append(columns[0])
        tags.append(shared_tags.setdefault(columns[-1], columns[-1]))


def _parse_tagged(
    path: str | Path, blocks: list[tuple[int, Sequence[str], tuple[str, ...]]], tag_scheme: str, strict: bool
) -> list[Sentence]:
    """Sentences of column or CoNLL blocks: tokens (characters or words)
    with one tag each."""
    if tag_scheme == IOB1:
        blocks = [(first, tokens, tuple(iob1_to_iob2(tags))) for first, tokens, tags in blocks]
    scheme = "bio" if tag_scheme == IOB1 else tag_scheme
    if scheme == "auto":
        scheme = detect_scheme({tag for _, _, tags in blocks for tag in tags})
    sentences = []
    repairs = []
    for first, tokens, tags in blocks:
        try:
            spans, repaired = tags_to_spans(tags, scheme, strict)
        except TagError as error:
            raise InputError(path, first + error.position, _tag_message(error, scheme, tag_scheme)) from None
        if repaired:
            repairs.append((first, repaired))
        if isinstance(tokens, str):
            sentences.append(Sentence(tokens, spans, None, str(path), first))
        else:
            text, words = join_words(tokens)
            sentences.append(Sentence(text, char_spans(spans, words), None, str(path), first, words))
    _warn_repaired(path, repairs, f"repaired %d invalid {scheme} tag(s)", "sentence(s)")
    return sentences


def _tag_message(error: TagError, scheme: str, given: str) -> str:
    """A TagError's message, with what `--lenient` would do, and for an
    orphan I- tag read as IOB2 the flag that reads IOB1."""
    message = error.message if error.repair is None else f"{error.message}; --lenient {error.repair}"
    if scheme == "bio" and given != IOB1 and "continues no entity" in error.message:
        message += "; an IOB1 file (CoNLL-2003's original release) needs --input_tag_scheme=iob1"
    return message


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


def write_cmeee(path: str | Path, sentences: Iterable[Sentence]) -> None:
    """Writes the CMeEE format: one JSON list, indented by one space, as
    CBLUE ships it (`json.dumps(records, ensure_ascii=False, indent=1)`, no
    final newline), entities in the order of `spans`; an unlabelled sentence
    is `{"text"}`. A file `read_corpus` read is written back identically."""
    records = []
    for index, sentence in enumerate(sentences):
        record = {"text": sentence.text}
        if sentence.spans is not None:
            entities = []
            for start, end, entity_type in sentence.spans:
                if not 0 <= start <= end < len(sentence.text):
                    raise ValueError(f"sentence {index}: span [{start}, {end}] is outside {sentence.text!r}")
                entity = sentence.text[start : end + 1]
                entities.append({"start_idx": start, "end_idx": end, "type": entity_type, "entity": entity})
            record["entities"] = entities
        records.append(record)
    with atomic_output(path) as out:
        out.write(json.dumps(records, ensure_ascii=False, indent=1))


def write_corpus(path: str | Path, sentences: list[Sentence], output_format: str) -> None:
    """Writes `cluener`, `cmeee`, or a column file in the tag scheme
    `output_format` names."""
    if output_format == "cluener":
        write_cluener(path, sentences)
    elif output_format == "cmeee":
        write_cmeee(path, sentences)
    else:
        write_column(path, sentences, output_format)


def write_column(path: str | Path, sentences: Iterable[Sentence], scheme: str) -> None:
    """Writes a column file in `scheme`, a blank line after each sentence:
    `word tag` lines for word-level sentences (CoNLL, one tag per word),
    `character tag` lines for the others. Nested spans keep only the outer
    one (see `kner.data.spans.flatten_spans`); unlabelled sentences, texts
    holding a line break, and spans that do not fall on a word-level
    sentence's word boundaries raise ValueError."""
    with atomic_output(path) as out:
        for index, sentence in enumerate(sentences):
            if sentence.spans is None:
                raise ValueError(f"sentence {index} is unlabelled")
            if any(character in _LINE_BREAKS for character in sentence.text):
                raise ValueError(f"sentence {index} holds a line break")
            if sentence.words is None:
                tokens = sentence.text
                tags = spans_to_tags(sentence.spans, len(tokens), scheme)
            else:
                tokens = [sentence.text[start:end] for start, end in sentence.words]
                if any(character in " \t" for token in tokens for character in token):
                    raise ValueError(f"sentence {index} has a word holding a space or tab")
                try:
                    spans = word_spans(flatten_spans(sentence.spans)[0], sentence.words)
                except ValueError as error:
                    raise ValueError(f"sentence {index}: {error}") from None
                tags = spans_to_tags(spans, len(tokens), scheme)
            out.writelines(f"{token} {tag}\n" for token, tag in zip(tokens, tags, strict=True))
            out.write("\n")
