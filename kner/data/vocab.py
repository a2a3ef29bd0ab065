"""BERT `vocab.txt` files and their special tokens.

One token a line; the line number is the token's id. Every BERT family's
vocab holds `[PAD]`, `[UNK]`, `[CLS]` and `[SEP]` (and `[MASK]` for masked
LM); Chinese BERT vocabs use `[unused1]` for whitespace.

Example:

```python
from kner.data.vocab import read_vocab, save_vocab

tokens = read_vocab("../shared/data/vocab/bert-base-cased-vocab.txt")
tokens[100], tokens[101]  # "[UNK]", "[CLS]"
save_vocab(tokens, "runs/model/vocab.txt")
```
"""

from __future__ import annotations

from pathlib import Path

from kner.data.files import write_text
from kner.errors import InputError

PAD, UNK, CLS, SEP, MASK, SPACE = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused1]"
SPECIAL_TOKENS = (PAD, SPACE, UNK, CLS, SEP, MASK)


def read_vocab(path: str | Path) -> list[str]:
    """Reads a BERT `vocab.txt` (one token a line; the line number is the id).
    Raises InputError for a missing or non-UTF-8 file, or one without
    `[PAD]`, `[UNK]`, `[CLS]` or `[SEP]`."""
    path = Path(path)
    try:
        tokens = path.read_text(encoding="utf-8").split("\n")
    except FileNotFoundError:
        raise InputError(path, None, "vocab file not found") from None
    except UnicodeDecodeError as e:
        raise InputError(path, None, f"not UTF-8 ({e.reason})") from None
    if tokens and tokens[-1] == "":
        tokens.pop()
    tokens = [t.rstrip("\r") for t in tokens]
    for name in (PAD, UNK, CLS, SEP):
        if name not in tokens:
            raise InputError(path, None, f"vocab has no {name} token")
    return tokens


def save_vocab(tokens: list[str], path: str | Path) -> None:
    write_text(path, "".join(t + "\n" for t in tokens))
