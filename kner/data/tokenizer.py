"""One-token-per-character tokenizer over a BERT `vocab.txt`, in core TF ops:
the character variant of the `kner.data.tokenizer_base.Tokenizer` interface
(`kner.data.wordpiece` is the WordPiece one). Vocab files are
`kner.data.vocab`'s; their names are also importable from here.

Chinese NER labels characters, so position i of the labels must be character i
of the text. BERT's WordPiece merges digit and Latin runs and drops spaces,
which breaks that alignment; this tokenizer never merges and never drops.

Each character is looked up as it is; when the vocab lacks it, its normalised
forms are tried in turn (lower case, full-width -> half-width, NFKC, accents
stripped). Whitespace maps to `[unused1]` (the usual Chinese BERT convention)
and anything else unknown, control characters and emoji included, to `[UNK]`.
All normalisation is precomputed in Python into one string -> id table, so the
TensorFlow side is only `utf8_characters` (UTF-8 decoding) plus a `tf.lookup` table:
the same code runs in tf.data and inside a SavedModel that stock TF Serving
loads (no tensorflow-text ops).

Example:
>>> tok = CharTokenizer("vocab.txt")
>>> tok(tf.constant(["ＡＢ 上海"]))  # ragged [1, 5] ids, one per character
>>> tok.encode("ＡＢ 上海")           # the same ids as a Python list
>>> tok.tokenize(tf.constant(["ＡＢ"]))  # Tokenized(ids, starts=[[0, 1]], ends=[[1, 2]])
"""

from __future__ import annotations

import collections
import functools
import unicodedata
from collections.abc import Iterable
from pathlib import Path

import tensorflow as tf

from kner.data.tokenizer_base import Encoding, Tokenized, Tokenizer, utf8_characters
from kner.data.vocab import MASK, SPACE, SPECIAL_TOKENS, read_vocab, save_vocab

# The vocab names every caller has imported from here since before `kner.data.vocab`.
__all__ = ["CharTokenizer", "build_vocab", "MASK", "SPECIAL_TOKENS", "read_vocab", "save_vocab"]


def build_vocab(texts: Iterable[str], min_count: int = 1) -> list[str]:
    """A vocab for from-scratch models: BERT's special tokens, then the
    characters of `texts` by descending frequency (ties by code point).

    >>> build_vocab(["上海", "上"])
    ['[PAD]', '[unused1]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', '上', '海']
    """
    counts = collections.Counter(c for text in texts for c in text if not c.isspace())
    chars = sorted((c for c, n in counts.items() if n >= min_count), key=lambda c: (-counts[c], c))
    return list(SPECIAL_TOKENS) + [c for c in chars if c not in SPECIAL_TOKENS]


def _half_width(char: str) -> str:
    code = ord(char)
    if code == 0x3000:
        return " "
    if 0xFF01 <= code <= 0xFF5E:
        return chr(code - 0xFEE0)
    return char


def _strip_accents(char: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", char) if unicodedata.category(c) != "Mn")


@functools.lru_cache(maxsize=2)
def _normal_forms(lowercase: bool) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Basic-Multilingual-Plane characters with the forms to try, in order,
    when the vocab lacks the raw character (vocab-independent, built once)."""
    result = []
    for code in range(0x10000):
        if 0xD800 <= code <= 0xDFFF:
            continue
        char = chr(code)
        # BERT's own normalisation first (lower case, accents stripped), then
        # full-width -> half-width and NFKC, which BERT does not do.
        lower = char.lower() if lowercase else char
        forms = [lower, _strip_accents(lower)]
        for form in (_half_width(char), unicodedata.normalize("NFKC", char)):
            form = form.lower() if lowercase else form
            forms += [form, _strip_accents(form)]
        forms = tuple(dict.fromkeys(f for f in forms if len(f) == 1 and f != char))
        if char.isspace() or forms:
            result.append((char, forms))
    return tuple(result)


class CharTokenizer(Tokenizer):
    """Maps every character of a text to exactly one vocab id (the
    `kner.data.tokenizer_base.Tokenizer` interface; token i is character i).

    Args:
        vocabulary: path of a BERT `vocab.txt`, or the token list itself.
        lowercase: try the lower-cased character when the raw one is missing
            (True for every Chinese BERT checkpoint, all of which are uncased).
    """

    def __init__(self, vocabulary: str | Path | list[str], lowercase: bool = True):
        super().__init__(vocabulary, lowercase, name="char_tokenizer")
        ids = {token: i for i, token in reversed(list(enumerate(self.vocabulary)))}
        self.space_id = ids.get(SPACE, self.unk_id)
        self.char_to_id = self._char_table(ids)
        keys, values = zip(*self.char_to_id.items())
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(keys, tf.string), tf.constant(values, tf.int32)),
            default_value=self.unk_id,
        )

    def _char_table(self, ids: dict[str, int]) -> dict[str, int]:
        """Every Basic-Multilingual-Plane character that maps to a known id
        (astral characters are looked up raw only: emoji and rare CJK map to
        themselves if present, else to [UNK])."""
        table = {t: i for t, i in ids.items() if len(t) == 1}
        for char, forms in _normal_forms(self.lowercase):
            if char in table:
                continue
            if char.isspace():
                table[char] = self.space_id
                continue
            known = next((f for f in forms if f in table), None)
            if known is not None:
                table[char] = table[known]
        return table

    def encode(self, text: str) -> list[int]:
        """The ids of `text`, one per character, in Python."""
        return [self.char_to_id.get(c, self.unk_id) for c in text]

    def encode_with_offsets(self, text: str) -> Encoding:
        return Encoding(self.encode(text), list(range(len(text))), list(range(1, len(text) + 1)))

    def split(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """Characters of a batch of UTF-8 strings: [batch, (chars)] strings.
        Invalid UTF-8 bytes become U+FFFD, one character each."""
        return utf8_characters(texts)

    per_character = True

    def character_ids(self, chars: tf.RaggedTensor) -> tf.RaggedTensor:
        return tf.ragged.map_flat_values(self.table.lookup, chars)

    def __call__(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """Ids of a batch of UTF-8 strings: [batch, (chars)] int32."""
        return self.character_ids(self.split(texts))

    def tokenize(self, texts: tf.Tensor) -> Tokenized:
        ids = self(texts)
        ends = tf.ragged.range(1, tf.cast(ids.row_lengths(), tf.int32) + 1)
        return Tokenized(ids, ends - 1, ends)
