"""Raw text for masked-LM pretraining and for distillation: files of plain
UTF-8 text, streamed one line at a time.

Three layouts:

- `line`: one document (or, for a teacher to label, one text) per line;
  blank lines are skipped.
- `google`: Google BERT's `create_pretraining_data.py` input, one sentence
  per line and a blank line between documents.
- `label_tab`: `label<TAB>text` per line (classification corpora such as
  book reviews); the label column is dropped and the text is one document.

Files are given as comma-separated paths or glob patterns
(`corpus/*.txt,extra.txt`), as `--corpus_files` and `--unlabeled_files`
take them. Every problem raises `InputError` naming `path:line` (invalid
UTF-8 included, with its column; `lenient=True` replaces it with U+FFFD and
counts it, see `kner.data.files`); nothing but the current document is held
in memory.

Example:

```python
from kner.data.raw_text import expand_paths, read_documents

for document in read_documents(expand_paths("corpus/*.txt"), layout="google"):
    document.sentences  # ["第一句。", "第二句。"]
```
"""

from __future__ import annotations

import dataclasses
import glob
from collections.abc import Iterator, Sequence
from pathlib import Path

from kner.data.files import numbered_lines
from kner.errors import InputError

LAYOUTS = ("line", "google", "label_tab")


@dataclasses.dataclass(frozen=True, slots=True)
class Document:
    """The sentences of one document (one line each in the `google` layout,
    a single element in the `line` layout), with where it starts."""

    sentences: list[str]
    path: str
    line: int


def expand_paths(spec: str | Sequence[str]) -> list[Path]:
    """The files named by comma-separated paths or glob patterns, in order
    (each pattern's matches sorted). InputError for a pattern that matches
    no file."""
    parts = spec.split(",") if isinstance(spec, str) else list(spec)
    paths: list[Path] = []
    for part in (p.strip() for p in parts):
        if not part:
            continue
        matches = sorted(glob.glob(part)) if glob.has_magic(part) else [part]
        if not matches:
            raise InputError(part, None, "no file matches this pattern")
        paths.extend(Path(m) for m in matches)
    if not paths:
        raise InputError(str(spec), None, "no files given")
    return paths


def layout_paths(spec: str, default_layout: str, layouts: Sequence[str] = LAYOUTS) -> list[tuple[str, Path]]:
    """`(layout, path)` for each file of a comma-separated spec whose entries
    may name their own layout, `LAYOUT:PATH_OR_GLOB` (for example
    `label_tab:corpus/book_review.txt,corpus/*.txt`); the others take
    `default_layout`. InputError for an unknown layout or a pattern that
    matches nothing."""
    result: list[tuple[str, Path]] = []
    for part in (p.strip() for p in spec.split(",")):
        layout, sep, rest = part.partition(":")
        if sep and layout.isidentifier():
            if layout not in layouts:
                raise InputError(part, None, f"unknown layout {layout!r}; expected one of {', '.join(layouts)}")
            part = rest
        else:
            layout = default_layout
        if part:
            result.extend((layout, path) for path in expand_paths(part))
    if not result:
        raise InputError(spec, None, "no files given")
    return result


def read_lines(paths: Sequence[str | Path], lenient: bool = False) -> Iterator[tuple[str, str, int]]:
    """`(text, path, line number)` of every non-blank line of `paths`, with
    surrounding white space removed."""
    for path in paths:
        for number, line in numbered_lines(path, lenient):
            text = line.strip()
            if text:
                yield text, str(path), number


def read_documents(paths: Sequence[str | Path], layout: str = "line", lenient: bool = False) -> Iterator[Document]:
    """The documents of `paths` in the given layout (see the module doc)."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown raw text layout {layout!r}; expected one of {LAYOUTS}")
    if layout == "line":
        for text, path, number in read_lines(paths, lenient):
            yield Document([text], path, number)
        return
    if layout == "label_tab":
        for text, path, number in read_lines(paths, lenient):
            label, tab, rest = text.partition("\t")
            if not tab:
                raise InputError(path, number, "no label<TAB>text column (is this file in the label_tab layout?)")
            if rest.strip():
                yield Document([rest.strip()], path, number)
        return
    for path in paths:
        sentences: list[str] = []
        start = 0
        for number, line in numbered_lines(path, lenient):
            text = line.strip()
            if text:
                if not sentences:
                    start = number
                sentences.append(text)
            elif sentences:
                yield Document(sentences, str(path), start)
                sentences = []
        if sentences:
            yield Document(sentences, str(path), start)
