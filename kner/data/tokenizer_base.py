"""What every tokenizer gives: token ids with character offsets, the special
ids and the vocab, in TensorFlow (for tf.data and the serving graph) and in
Python.

Variants, one module each: `kner.data.tokenizer.CharTokenizer` (one token
per character, for Chinese) and `kner.data.wordpiece.WordPieceTokenizer`
(BERT's WordPiece, for English and mixed text). The pipeline and the serving
graph call only this interface:

- `tokenize(texts)`: a [batch] string tensor of UTF-8 texts in, a
  `Tokenized` out: ids and `[start, end)` character (code point) offsets of
  every token into the text as given, each [batch, (tokens)] int32 ragged.
  Invalid UTF-8 bytes count as one U+FFFD character each.
- `encode_with_offsets(text)`: the same for one Python string, as lists.
- `continues(ids)`: whether each token continues the word before it (a
  `##` piece), which `kner.data.units` reads;
- `pad_id`, `unk_id`, `cls_id`, `sep_id`, `mask_id` (None when the vocab has
  no `[MASK]`), `vocabulary`, `vocabulary_size`, `lowercase`.

Example:

```python
tokenizer = WordPieceTokenizer("vocab.txt", lowercase=False)
out = tokenizer.tokenize(tf.constant(["Héllo wörld"]))
out.ids, out.starts, out.ends  # ragged [1, (tokens)]; text[start:end] is a token's source
tokenizer.encode_with_offsets("Héllo wörld")  # Encoding(ids=[...], starts=[...], ends=[...])
```
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import ClassVar, NamedTuple

import numpy as np
import tensorflow as tf

from kner.data.vocab import CLS, MASK, PAD, SEP, UNK, read_vocab


def utf8_characters(texts: tf.Tensor) -> tf.RaggedTensor:
    """The characters (Unicode code points) of [batch] UTF-8 strings, each as
    its own UTF-8 string: ragged [batch, (chars)]. Invalid UTF-8 bytes become
    U+FFFD, one character each.

    This is `tf.strings.unicode_split(texts, "UTF-8", errors="replace")` in
    three ops instead of that wrapper's twenty-odd (decode, one range,
    encode), which a serving call pays once per request.

    Example:
    >>> utf8_characters(tf.constant(["上海", "a😀"]))  # [["上", "海"], ["a", "😀"]], UTF-8 bytes
    """
    texts = tf.convert_to_tensor(texts, tf.string)
    if texts.shape.rank not in (None, 1):
        raise ValueError(f"texts must be a [batch] string tensor, got shape {texts.shape}")
    decoded = tf.raw_ops.UnicodeDecode(
        input=texts, input_encoding="UTF-8", errors="replace", replacement_char=0xFFFD, Tsplits=tf.int64
    )
    codes = decoded.char_values
    chars = tf.raw_ops.UnicodeEncode(
        input_values=codes,
        input_splits=tf.range(tf.size(codes, out_type=tf.int64) + 1),
        output_encoding="UTF-8",
        errors="replace",
        replacement_char=0xFFFD,
    )
    return tf.RaggedTensor.from_row_splits(chars, decoded.row_splits, validate=False)


# What marks a WordPiece piece that continues a word.
CONTINUATION = "##"


class Tokenized(NamedTuple):
    """Tokens of a batch of texts: [batch, (tokens)] int32 ragged tensors.
    `starts` and `ends` are character offsets, `end` exclusive."""

    ids: tf.RaggedTensor
    starts: tf.RaggedTensor
    ends: tf.RaggedTensor


class Encoding(NamedTuple):
    """Tokens of one text: ids and `[start, end)` character offsets."""

    ids: list[int]
    starts: list[int]
    ends: list[int]


class Tokenizer(tf.Module, abc.ABC):
    """The interface (module doc). Subclasses implement `tokenize` and
    `encode_with_offsets`, which must agree token for token.

    Args:
        vocabulary: path of a BERT `vocab.txt`, or the token list itself.
        lowercase: BERT's `do_lower_case`, as each variant applies it.
        name: the module's name (in a SavedModel's variable scopes).
    """

    def __init__(self, vocabulary: str | Path | list[str], lowercase: bool, name: str):
        super().__init__(name=name)
        self.vocabulary = read_vocab(vocabulary) if isinstance(vocabulary, (str, Path)) else list(vocabulary)
        self.lowercase = lowercase
        first_ids = {token: i for i, token in reversed(list(enumerate(self.vocabulary)))}
        self.pad_id, self.unk_id = first_ids[PAD], first_ids[UNK]
        self.cls_id, self.sep_id = first_ids[CLS], first_ids[SEP]
        self.mask_id = first_ids.get(MASK)
        self._continues_word = np.array(
            [len(t) > len(CONTINUATION) and t.startswith(CONTINUATION) for t in self.vocabulary], bool
        )

    @property
    def vocabulary_size(self) -> int:
        return len(self.vocabulary)

    @abc.abstractmethod
    def tokenize(self, texts: tf.Tensor) -> Tokenized:
        """Ids and character offsets of a [batch] string tensor (module doc)."""

    @abc.abstractmethod
    def encode_with_offsets(self, text: str) -> Encoding:
        """What `tokenize` gives for one text, in Python."""

    # Whether each token is one character of the text, in order (`CharTokenizer`):
    # then `character_ids` maps the characters of `utf8_characters`.
    per_character: ClassVar[bool] = False

    def character_ids(self, chars: tf.RaggedTensor) -> tf.RaggedTensor:
        """Ids of ragged [batch, (chars)] UTF-8 characters, one each (only
        where `per_character`)."""
        raise NotImplementedError(f"{type(self).__name__} does not give one token per character")

    def continues(self, ids: tf.Tensor) -> tf.Tensor:
        """bool, the shape of int32 `ids`: whether each token continues the
        word of the token before it (a WordPiece `##` piece; never for one
        token per character)."""
        return tf.gather(tf.constant(self._continues_word), ids)

    def __call__(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """Ids of a batch of UTF-8 strings: [batch, (tokens)] int32."""
        return self.tokenize(texts).ids

    def encode(self, text: str) -> list[int]:
        """The ids of `text`, in Python."""
        return self.encode_with_offsets(text).ids
