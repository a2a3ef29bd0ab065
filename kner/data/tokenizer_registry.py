"""The tokenizers by name, as `--tokenizer` and a model_dir's settings name
them: `char` (`kner.data.tokenizer.CharTokenizer`, one token per character,
the default of Chinese checkpoints) and `wordpiece`
(`kner.data.wordpiece.WordPieceTokenizer`, BERT's WordPiece, English and
mixed text). Both take a vocab and `lowercase` and give the
`kner.data.tokenizer_base.Tokenizer` interface.

Example:

```python
tokenizer = make_tokenizer("wordpiece", "vocab.txt", lowercase=False)
```
"""

from __future__ import annotations

from pathlib import Path

from kner.data.tokenizer import CharTokenizer
from kner.data.tokenizer_base import Tokenizer
from kner.data.wordpiece import WordPieceTokenizer

TOKENIZERS: dict[str, type[Tokenizer]] = {"char": CharTokenizer, "wordpiece": WordPieceTokenizer}


def make_tokenizer(kind: str, vocabulary: str | Path | list[str], lowercase: bool) -> Tokenizer:
    """The tokenizer named `kind` (a key of `TOKENIZERS`) over `vocabulary`;
    ValueError for another name."""
    if kind not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer {kind!r}; expected one of {', '.join(TOKENIZERS)}")
    return TOKENIZERS[kind](vocabulary, lowercase=lowercase)


def tokenizer_name(tokenizer: Tokenizer) -> str:
    """The registry name of `tokenizer`'s kind (what `settings.json` keeps)."""
    return next(name for name, kind in TOKENIZERS.items() if isinstance(tokenizer, kind))
