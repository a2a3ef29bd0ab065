"""The tokenizers by name, as `--tokenizer` and a model_dir's settings name
them: `char` (`kner.data.tokenizer.CharTokenizer`, one token per character,
the default of Chinese checkpoints) and `wordpiece`
(`kner.data.wordpiece.WordPieceTokenizer`, BERT's WordPiece, English and
mixed text). Both take a vocab and `lowercase` and give the
`kner.data.tokenizer_base.Tokenizer` interface.

Example:

```python
tokenizer = make_tokenizer("wordpiece", "vocab.txt", lowercase=False)
default_tokenizer(read_vocab("chinese_L-12_H-768_A-12/vocab.txt"))  # "char"
```
"""

from __future__ import annotations

from pathlib import Path

from kner.data.basic_tokenizer import is_cjk
from kner.data.tokenizer import CharTokenizer
from kner.data.tokenizer_base import Tokenizer
from kner.data.wordpiece import WordPieceTokenizer

TOKENIZERS: dict[str, type[Tokenizer]] = {"char": CharTokenizer, "wordpiece": WordPieceTokenizer}
# Single CJK ideographs in a vocab above this share make `char` the default:
# 35% of Google's Chinese vocab, 0.4% and 0.8% of the English cased and uncased.
CHINESE_VOCAB_SHARE = 0.1


def default_tokenizer(vocabulary: list[str]) -> str:
    """`char` for a Chinese vocab (one token per character, as Chinese NER
    labels characters), `wordpiece` for any other."""
    ideographs = sum(len(token) == 1 and is_cjk(ord(token)) for token in vocabulary)
    return "char" if ideographs > CHINESE_VOCAB_SHARE * len(vocabulary) else "wordpiece"


def make_tokenizer(kind: str, vocabulary: str | Path | list[str], lowercase: bool) -> Tokenizer:
    """The tokenizer named `kind` (a key of `TOKENIZERS`) over `vocabulary`;
    ValueError for another name."""
    if kind not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer {kind!r}; expected one of {', '.join(TOKENIZERS)}")
    return TOKENIZERS[kind](vocabulary, lowercase=lowercase)


def tokenizer_name(tokenizer: Tokenizer) -> str:
    """The registry name of `tokenizer`'s kind (what `settings.json` keeps)."""
    return next(name for name, kind in TOKENIZERS.items() if isinstance(tokenizer, kind))
