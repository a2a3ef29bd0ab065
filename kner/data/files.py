"""Reading text files as checked UTF-8, and writing files whole or not at all.

Reading: `numbered_lines` decodes each line as UTF-8 and `check_text`
checks that a decoded string can be encoded again (a JSON `\\u` escape can
produce a lone surrogate, U+D800-U+DFFF, which has no UTF-8 form and would
crash every writer later). Both raise `InputError` naming `file:line`, the
position and the likely cause; with `lenient=True` they replace what is
broken with U+FFFD instead, one character for one (so span offsets do not
move), and count it.

Writing: `atomic_output` writes to a temporary file in the target's
directory and renames it over the target only when everything was written,
so a failure leaves no empty or half-written file; `check_writable` tells
before a long job whether the output can be written at all.

Example:

```python
from kner.data.files import atomic_output, check_text, check_writable

check_writable("out.json")                  # InputError if it cannot be written
text, replaced = check_text(record["text"], "in.json", 3, lenient=False)
with atomic_output("out.json") as out:
    out.write(text + "\\n")
```
"""

from __future__ import annotations

import codecs
import contextlib
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from kner.errors import InputError

REPLACEMENT = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")
_logger = logging.getLogger(__name__)
_LENIENT_HINT = "--lenient replaces it with U+FFFD (offsets unchanged) and counts it"


def _replace_invalid_run(error: UnicodeDecodeError) -> tuple[str, int]:
    """Decoding error handler: one U+FFFD for an invalid byte and the
    continuation bytes after it, so a broken character stays one character."""
    end = error.end
    while end < len(error.object) and 0x80 <= error.object[end] <= 0xBF:
        end += 1
    return REPLACEMENT, end


codecs.register_error("kner_replace_run", _replace_invalid_run)


def _decode_problem(raw: bytes, error: UnicodeDecodeError) -> str:
    column = len(raw[: error.start].decode("utf-8", "kner_replace_run")) + 1
    bad = raw[error.start : error.start + 3]
    if len(bad) >= 2 and bad[0] == 0xED and 0xA0 <= bad[1] <= 0xBF:
        cause = "an encoded surrogate (U+D800-U+DFFF), most likely a broken \\u escape"
    else:
        cause = "most likely the file is in another encoding, such as GBK"
    return f"not valid UTF-8 at column {column} (byte 0x{bad[:1].hex()}): {cause}; {_LENIENT_HINT}"


def numbered_lines(path: str | Path, lenient: bool = False) -> Iterator[tuple[int, str]]:
    """Yields `(line number, line)` without line ends, one line at a time,
    or raises an InputError for a missing, unreadable or empty file, and for
    a line that is not valid UTF-8 (unless `lenient`: then each invalid
    sequence becomes one U+FFFD, and a warning gives the count). Nothing but
    the current line is held, whatever the file's size."""
    try:
        file = open(path, "rb")  # noqa: SIM115 - closed below; open errors become InputError
    except OSError as error:
        raise InputError.from_os_error(path, error) from None
    blank = True
    replaced, first = 0, None
    with file:
        for number, raw in enumerate(file, 1):
            if number == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                if not lenient:
                    raise InputError(path, number, _decode_problem(raw, error)) from None
                line = raw.decode("utf-8", "kner_replace_run")
                replaced += line.count(REPLACEMENT) - raw.count(REPLACEMENT.encode())
                first = first or number
            line = line.removesuffix("\n").removesuffix("\r")
            blank = blank and not line.strip()
            yield number, line
    if blank:
        raise InputError(path, None, "file is empty")
    if replaced:
        _logger.warning(
            "%s: replaced %d invalid UTF-8 sequence(s) with U+FFFD (first at line %d)", path, replaced, first
        )


def check_text(
    text: str, path: str | Path, line: int | None, lenient: bool = False, what: str = "text", repairable: bool = True
) -> tuple[str, int]:
    """`text` if UTF-8 can encode it; else an InputError at `path:line`
    naming the first lone surrogate's position, or with `lenient` the text
    with every lone surrogate replaced by U+FFFD and their count.
    `repairable=False` (for names that must not change) always raises."""
    found = _SURROGATE.search(text)
    if found is None:
        return text, 0
    if not (lenient and repairable):
        code = f"U+{ord(found.group()):04X}"
        message = (
            f"{what} character {found.start()} is a lone surrogate {code}, which UTF-8 cannot encode: "
            "most likely a broken \\u escape (half of a surrogate pair)"
        )
        raise InputError(path, line, f"{message}; {_LENIENT_HINT}" if repairable else message)
    return _SURROGATE.sub(REPLACEMENT, text), len(_SURROGATE.findall(text))


def check_writable(path: str | Path) -> None:
    """Raises InputError unless a file can be created at `path` (its
    directory exists and is writable, and `path` is not a directory)."""
    path = Path(path)
    if path.is_dir():
        raise InputError(path, None, "is a directory, expected an output file")
    directory = path.parent
    if not directory.is_dir():
        raise InputError(path, None, f"cannot write: directory {str(directory)!r} does not exist")
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=f".{path.name}.", suffix=".tmp"):
            pass
    except OSError as error:
        raise InputError(path, None, f"cannot write: {(error.strerror or str(error)).lower()}") from None


def write_text(path: str | Path, text: str) -> None:
    """Writes `text` as UTF-8 to `path` through `atomic_output`."""
    with atomic_output(path) as out:
        out.write(text)


@contextlib.contextmanager
def atomic_output(path: str | Path, mode: str = "w") -> Iterator[TextIO]:
    """A file to write `path` through: a temporary file in the same
    directory, renamed to `path` when the block ends without an exception
    and removed when it raises. Text modes write UTF-8."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        encoding = None if "b" in mode else "utf-8"
        with open(handle, mode, encoding=encoding) as out:
            yield out
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
