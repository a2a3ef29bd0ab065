"""BERT's WordPiece tokenizer (Google's `tokenization.py` `FullTokenizer`) in
core TF ops, with character offsets into the original text.

`BasicTokenizer` (cleaning, CJK ideographs one per token, punctuation split,
`do_lower_case` with lower-casing and NFD accent stripping) is a table per
character, built once in Python (`kner.data.basic_tokenizer`) and shipped
as `tf.lookup` tables; `WordpieceTokenizer` is greedy longest-match-first
with `##` continuations, and `[UNK]` for a word with no split into vocab
pieces or longer than `max_input_chars_per_word` (200, Google's and what
Hugging Face's `BertTokenizerFast` must be given to agree).

In TensorFlow (`tokenize`), for a whole batch at once:

1. decode UTF-8 to code points (invalid bytes: U+FFFD, which cleaning drops);
2. replace each code point by its normalised code points (a hash table of
   the code points that change, and their replacements);
3. find the words: runs between breaks, punctuation and CJK standing alone;
4. look up, for every character of every word, every substring starting
   there of up to the vocab's longest piece (18 characters in Google's
   English vocabs), `##`-prefixed past the word's first character, and keep
   the longest in the vocab: where greedy matching would go from there;
5. walk each word from its start along those longest matches, every word in
   one step of a `tf.while_loop` bounded by `max_input_chars_per_word`; a
   word that reaches a character with no match is one `[UNK]`.

Only core ops (no tensorflow-text, no `py_function`), so the same function
runs in tf.data, in an exported SavedModel under stock TF Serving and in
TensorFlow's C loader. `encode_with_offsets` is the same in Python, on the
same tables; the tests hold both to Hugging Face's tokenizer.

Each token's offsets are `[start, end)` in characters of the text as given:
from the original character its first normalised character came from to the
one its last came from (so `[UNK]` covers its whole word, and a character
dropped inside a word is inside the word's span). This is what
`BertTokenizerFast` returns as `offset_mapping`.

Example:

```python
tokenizer = WordPieceTokenizer("../shared/data/vocab/bert-base-cased-vocab.txt", lowercase=False)
out = tokenizer.tokenize(tf.constant(["Héllo, Zürich!"]))
tokenizer.encode_with_offsets("Héllo, Zürich!")  # Encoding(ids, starts, ends), the same
```
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import tensorflow as tf

from kner.data.basic_tokenizer import CJK_RANGES, SPACE, char_tables, split_words
from kner.data.tokenizer_base import CONTINUATION, Encoding, Tokenized, Tokenizer

# Google's WordpieceTokenizer default; Hugging Face's is 100.
MAX_INPUT_CHARS_PER_WORD = 200
# The CJK ranges as sorted [first, last + 1) bounds: a code point is CJK where
# `searchsorted(bounds, code, side="right")` is odd.
_CJK_BOUNDS = tuple(sorted(b for low, high in CJK_RANGES for b in (low, high + 1)))
# UTF-8 takes 1 + searchsorted(bounds, code, side="right") bytes.
_UTF8_LENGTH_BOUNDS = (0x80, 0x800, 0x10000)


def _static_table(keys: list, values: list, key_dtype: tf.DType, default: int) -> tf.lookup.StaticHashTable:
    initializer = tf.lookup.KeyValueTensorInitializer(
        tf.constant(keys, key_dtype, shape=[len(keys)]), tf.constant(values, tf.int32, shape=[len(values)])
    )
    return tf.lookup.StaticHashTable(initializer, default_value=default)


@dataclasses.dataclass(frozen=True)
class PieceVocab:
    """The vocab as WordPiece matches it: word-initial pieces and `##`
    continuations (without the `##`), each to its id, and the length in
    characters of the longest piece (greedy matching tries nothing longer)."""

    word_initial: dict[str, int]
    continuation: dict[str, int]
    max_chars: int

    @classmethod
    def from_tokens(cls, tokens: list[str]) -> PieceVocab:
        """As Google's `load_vocab` reads a vocab: each line stripped, and a
        token that occurs twice has its last id."""
        word_initial = {token.strip(): i for i, token in enumerate(tokens)}
        continuation = {
            token[len(CONTINUATION) :]: i
            for token, i in word_initial.items()
            if token.startswith(CONTINUATION) and len(token) > len(CONTINUATION)
        }
        return cls(word_initial, continuation, max(len(piece) for piece in (*word_initial, *continuation)))

    def longest_match(self, word: str, start: int) -> tuple[int, int] | None:
        """`(id, end)` of the longest piece at `word[start:]` (a continuation
        past the first character), or None."""
        table = self.word_initial if start == 0 else self.continuation
        for end in range(min(len(word), start + self.max_chars), start, -1):
            piece_id = table.get(word[start:end])
            if piece_id is not None:
                return piece_id, end
        return None


class WordPieceTokenizer(Tokenizer):
    """BERT's WordPiece (module doc) behind the `kner.data.tokenizer_base.Tokenizer` interface.

    Args:
        vocabulary: path of a BERT `vocab.txt`, or the token list itself.
            Read as Google's `load_vocab` does: each line stripped, and a
            token that occurs twice has its last id.
        lowercase: `do_lower_case` (lower-case and strip accents); True for
            `uncased` checkpoints, False for `cased` ones (see
            `kner.backbones.casing`).
        max_input_chars_per_word: longer words are one `[UNK]`.
    """

    def __init__(
        self,
        vocabulary: str | Path | list[str],
        lowercase: bool = True,
        max_input_chars_per_word: int = MAX_INPUT_CHARS_PER_WORD,
    ):
        super().__init__(vocabulary, lowercase, name="wordpiece_tokenizer")
        self.max_input_chars_per_word = max_input_chars_per_word
        self.tables = char_tables(lowercase)
        self.pieces = PieceVocab.from_tokens(self.vocabulary)

        replaced = sorted(self.tables.replacements.items())
        self._replacement_row = _static_table([ord(c) for c, _ in replaced], list(range(len(replaced))), tf.int64, -1)
        lengths = [len(form) for _, form in replaced]
        self._replacement_splits = tf.constant([0] + list(itertools.accumulate(lengths)), tf.int32)
        # One spare entry, so that gathers masked out by `tf.where` stay in range.
        self._replacement_chars = tf.constant([ord(c) for _, form in replaced for c in form] + [0], tf.int32)
        punctuation = sorted(ord(c) for c in self.tables.punctuation)
        self._punctuation = _static_table(punctuation, [1] * len(punctuation), tf.int64, 0)
        word_initial, continuation = self.pieces.word_initial, self.pieces.continuation
        self._word_initial = _static_table(list(word_initial), list(word_initial.values()), tf.string, -1)
        self._continuation = _static_table(list(continuation), list(continuation.values()), tf.string, -1)

    # Python ---------------------------------------------------------------

    def encode_with_offsets(self, text: str) -> Encoding:
        ids, starts, ends = [], [], []
        for word, origins in split_words(text, self.tables):
            for piece_id, first, last in self.word_pieces(word):
                ids.append(piece_id)
                starts.append(origins[first])
                ends.append(origins[last] + 1)
        return Encoding(ids, starts, ends)

    def word_pieces(self, word: str) -> list[tuple[int, int, int]]:
        """Google's `WordpieceTokenizer.tokenize` on one word: `(id, first
        character, last character)` per piece; one `[UNK]` for the whole
        word when it is too long or has no split into vocab pieces."""
        unknown = [(self.unk_id, 0, len(word) - 1)]
        if len(word) > self.max_input_chars_per_word:
            return unknown
        pieces = []
        start = 0
        while start < len(word):
            found = self.pieces.longest_match(word, start)
            if found is None:
                return unknown
            piece_id, end = found
            pieces.append((piece_id, start, end - 1))
            start = end
        return pieces

    # TensorFlow -----------------------------------------------------------

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
    def tokenize(self, texts: tf.Tensor) -> Tokenized:
        """Ids and `[start, end)` character offsets of a [batch] string
        tensor (module doc): three [batch, (tokens)] int32 ragged tensors."""
        codes = tf.strings.unicode_decode(texts, "UTF-8", errors="replace")
        rows = tf.shape(texts, out_type=tf.int64)[0]
        chars, char_rows, origins = self._normalise(codes)
        chars, char_rows, origins, word_starts = self._words(chars, char_rows, origins)
        pieces = self._word_pieces(chars, word_starts)
        piece, last, piece_ids = pieces
        values = (
            piece_ids,
            tf.cast(tf.gather(origins, piece), tf.int32),
            tf.cast(tf.gather(origins, last), tf.int32) + 1,
        )
        splits = tf.searchsorted(tf.gather(char_rows, piece), tf.range(rows + 1), out_type=tf.int64)
        ids, starts, ends = (tf.RaggedTensor.from_row_splits(v, splits, validate=False) for v in values)
        return Tokenized(ids, starts, ends)

    def _normalise(self, codes: tf.RaggedTensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """The normalised characters of a batch, flat: code points, the row
        of each and the index in its text of the character it came from."""
        flat = codes.flat_values
        flat_rows = codes.value_rowids()
        positions = tf.range(tf.size(flat, out_type=tf.int64)) - tf.gather(codes.row_splits, flat_rows)
        row = self._replacement_row.lookup(tf.cast(flat, tf.int64))
        replaced = row >= 0
        row = tf.maximum(row, 0)
        first = tf.gather(self._replacement_splits, row)
        counts = tf.where(replaced, tf.gather(self._replacement_splits, row + 1) - first, 1)
        source, within = _repeated(tf.cast(counts, tf.int64))
        within = tf.cast(within, tf.int32)
        from_table = tf.gather(replaced, source)
        index = tf.where(from_table, tf.gather(first, source) + within, tf.size(self._replacement_chars) - 1)
        chars = tf.where(from_table, tf.gather(self._replacement_chars, index), tf.gather(flat, source))
        return chars, tf.gather(flat_rows, source), tf.gather(positions, source)

    def _stands_alone(self, chars: tf.Tensor) -> tf.Tensor:
        """Punctuation and CJK ideographs: each a word by itself."""
        punctuation = self._punctuation.lookup(tf.cast(chars, tf.int64)) > 0
        return punctuation | (tf.searchsorted(tf.constant(_CJK_BOUNDS, tf.int32), chars, side="right") % 2 == 1)

    def _words(self, chars: tf.Tensor, rows: tf.Tensor, origins: tf.Tensor) -> tuple[tf.Tensor, ...]:
        """Drops the breaks; returns the characters of words, their rows and
        origins, and whether each starts a word."""
        is_break = tf.equal(chars, ord(SPACE))
        alone = self._stands_alone(chars)
        new_row = tf.concat([[True], tf.not_equal(rows[1:], rows[:-1])], 0)
        after_boundary = tf.concat([[True], (is_break | alone)[:-1]], 0)
        starts = alone | new_row | after_boundary
        kept = tf.where(~is_break)[:, 0]
        return tuple(tf.gather(t, kept) for t in (chars, rows, origins, starts))

    def _word_pieces(self, chars: tf.Tensor, word_starts: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """WordPiece over the words of a batch: for each piece, the index of
        its first and last character in `chars`, and its id."""
        size = tf.size(chars, out_type=tf.int64)
        word_of = tf.cumsum(tf.cast(word_starts, tf.int64)) - 1
        first_char = tf.where(word_starts)[:, 0]
        word_end = tf.concat([first_char[1:], [size]], 0)
        too_long = word_end - first_char > self.max_input_chars_per_word
        longest, longest_ids = self._longest_matches(chars, word_starts, word_of, word_end, too_long)
        visited = self._walk(longest, first_char, tf.gather(word_end, word_of), too_long)
        # A word fails where its walk reached a character with no match.
        failed = tf.math.unsorted_segment_max(tf.cast(visited & (longest == 0), tf.int32), word_of, tf.size(first_char))

        unknown = tf.gather((failed > 0) | too_long, word_of)
        is_piece = tf.where(unknown, word_starts, visited)
        piece = tf.where(is_piece)[:, 0]
        piece_unknown = tf.gather(unknown, piece)
        last = tf.where(
            piece_unknown,
            tf.gather(word_end, tf.gather(word_of, piece)) - 1,
            piece + tf.cast(tf.gather(longest, piece), tf.int64) - 1,
        )
        ids = tf.where(piece_unknown, self.unk_id, tf.gather(longest_ids, piece))
        return piece, last, ids

    def _longest_matches(
        self, chars: tf.Tensor, word_starts: tf.Tensor, word_of: tf.Tensor, word_end: tf.Tensor, too_long: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """For each character: the length of the longest vocab piece that
        starts there and stays in its word (0 if none, and for every
        character of a word too long), and its id."""
        size = tf.size(chars, out_type=tf.int64)
        counts = tf.minimum(tf.gather(word_end, word_of) - tf.range(size), self.pieces.max_chars)
        counts = tf.where(tf.gather(too_long, word_of), tf.zeros_like(counts), counts)
        owner, lengths = _repeated(counts)  # the character each candidate starts at, and its length - 1
        lengths += 1
        offsets = tf.cumsum(counts, exclusive=True)
        # Substrings as bytes of all characters in one string.
        num_bytes = tf.searchsorted(tf.constant(_UTF8_LENGTH_BOUNDS, tf.int32), chars, side="right") + 1
        byte_at = tf.concat([[0], tf.cumsum(num_bytes)], 0)
        begin = tf.gather(byte_at, owner)
        candidates = tf.strings.substr(
            tf.strings.unicode_encode(chars, "UTF-8"), begin, tf.gather(byte_at, owner + lengths) - begin
        )
        initial = tf.gather(word_starts, owner)
        ids = tf.where(initial, self._word_initial.lookup(candidates), self._continuation.lookup(candidates))
        found = tf.where(ids >= 0, tf.cast(lengths, tf.int32), 0)
        longest = tf.maximum(tf.math.unsorted_segment_max(found, owner, size), 0)
        best = tf.where(longest > 0, offsets + tf.cast(longest, tf.int64) - 1, tf.size(ids, out_type=tf.int64))
        longest_ids = tf.gather(tf.concat([ids, [-1]], 0), best)
        return longest, longest_ids

    def _walk(self, longest: tf.Tensor, first_char: tf.Tensor, end: tf.Tensor, too_long: tf.Tensor) -> tf.Tensor:
        """Greedy matching: every word from its first character along the
        longest matches (`end`: each character's word end), all words one
        piece a step. Returns whether each character was reached: the start
        of a piece, or where a word's walk stopped with no match."""
        size = tf.size(longest, out_type=tf.int64)
        # One spare slot, where finished words stay.
        longest = tf.concat([tf.cast(longest, tf.int64), [0]], 0)
        end = tf.concat([end, [size + 1]], 0)

        def step(position, visited):
            visited = tf.tensor_scatter_nd_update(visited, position[:, None], tf.ones_like(position, tf.bool))
            length = tf.gather(longest, position)
            position = tf.where((length > 0) & (position + length < tf.gather(end, position)), position + length, size)
            return position, visited

        _, visited = tf.while_loop(
            lambda position, visited: tf.reduce_any(position < size),
            step,
            (tf.where(too_long, size, first_char), tf.zeros([size + 1], tf.bool)),
            maximum_iterations=self.max_input_chars_per_word,
        )
        return visited[:-1]


def _repeated(counts: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """`tf.repeat(tf.range(n), counts)` and each element's index within its
    repeat, in fewer ops than `tf.repeat`: int64 [sum(counts)] each."""
    ends = tf.cumsum(counts)
    index = tf.range(tf.reduce_sum(counts))
    source = tf.searchsorted(ends, index, side="right", out_type=tf.int64)
    return source, index - tf.gather(ends - counts, source)
