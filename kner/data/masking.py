"""Dynamic (whole word) masking for masked-LM pretraining, in core TF ops
inside the `tf.data` pipeline.

The recipe is Google's `create_masked_lm_predictions`
(google-research/bert `create_pretraining_data.py`, with
`do_whole_word_mask`), which HFL used for Chinese whole word masking with
words from a segmenter (github.com/ymcui/Chinese-BERT-wwm):

- `num_to_predict = min(max_predictions_per_seq, max(1, round(length *
  masked_lm_prob)))`, `length` counting `[CLS]` and `[SEP]`;
- the words are visited in random order; a word is taken whole when it still
  fits in `num_to_predict`, and skipped otherwise (a later, shorter word may
  still fit); `[CLS]`, `[SEP]` and padding are never candidates;
- with `ngram` > 1, ALBERT's n-gram masking
  (google-research/albert `create_masked_lm_predictions`, `favor_shorter_ngram`):
  each visited word starts an n-gram of `n` consecutive words, `n` drawn
  from 1..`ngram` with probability proportional to 1/n; when the n-gram does
  not fit in `num_to_predict` it shrinks (n-1, ..., 1 words) until it does,
  or is skipped; an n-gram touching a word already taken is skipped. As in
  ALBERT the words are the candidates (here jieba's, so whole word masking
  and n-grams combine: a word is never split) and an n-gram may run on from
  segment A into B (the `[SEP]` between them is never masked);
- each chosen token independently becomes `[MASK]` with probability
  `mask_probability` (0.8), becomes a token drawn uniformly from the whole
  vocab with `random_probability` (0.1), and stays itself otherwise (0.1).
  ELECTRA's masking (google-research/electra `pretrain_helpers.mask`) is
  `mask_probability=0.85, random_probability=0`: 85% `[MASK]`, 15% kept,
  none random (the generator's samples replace them all later).

Each example also gets `example_seed`, a seed of its own from the same
`(seed, example index)`, for draws a model makes per example (ELECTRA's
sampling from its generator), so that they too are the same under every
`tf.distribute` strategy and in a resumed run.

Masks are drawn with stateless random ops seeded by `(seed, example
index)`, so the same seed gives the same masks, a resumed run draws the
masks an uninterrupted one would, each pass over the data (the index keeps
counting) gets new masks (RoBERTa's dynamic masking), and evaluation with a
fixed seed sees fixed masks.

Example:
>>> masker = Masker(vocab_size=21128, mask_id=103, max_seq_length=128)
>>> features = masker(example, index=tf.constant(7, tf.int64), seed=42)
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

EXAMPLE_SEED_SALT = 0x5EED  # keeps `example_seed` apart from the masking draws' seeds


@dataclasses.dataclass(frozen=True)
class Masker:
    """Masks one example (see the module doc) and pads it to
    `max_seq_length`. `ngram`: the longest n-gram of words masked together
    (1: single words, Google BERT; 3: ALBERT's default). `mask_probability`
    and `random_probability`: the shares of the chosen tokens that become
    `[MASK]` and a random token (BERT: 0.8 and 0.1; ELECTRA: 0.85 and 0);
    the rest stay themselves."""

    vocab_size: int
    mask_id: int
    max_seq_length: int = 128
    masked_lm_prob: float = 0.15
    max_predictions_per_seq: int = 20
    ngram: int = 1
    mask_probability: float = 0.8
    random_probability: float = 0.1

    def __post_init__(self):
        if self.ngram < 1:
            raise ValueError(f"ngram must be at least 1, got {self.ngram}")
        shares = (self.mask_probability, self.random_probability)
        if min(shares) < 0 or sum(shares) > 1:
            raise ValueError(f"mask and random probabilities must be >= 0 with a sum <= 1, got {shares}")

    def ngram_lengths(self, count: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """int32 `[count]`: an n-gram length per word, n in 1..`ngram` drawn
        with probability proportional to 1/n (all 1 when `ngram` is 1)."""
        if self.ngram == 1:
            return tf.ones([count], tf.int32)
        logits = tf.math.log(1.0 / tf.range(1, self.ngram + 1, dtype=tf.float32))[None, :]
        draws = tf.random.stateless_categorical(logits, count, seed, dtype=tf.int32)[0]
        return draws + 1

    def choose(self, word_ids: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """Bool `[length]`: the positions to predict, whole words (n-grams of
        words) at a time.

        `word_ids` int32 `[length]`, -1 for tokens never masked; `seed` int64 `[2]`."""
        length = tf.size(word_ids)
        target = tf.cast(tf.round(tf.cast(length, tf.float32) * self.masked_lm_prob), tf.int32)
        target = tf.minimum(self.max_predictions_per_seq, tf.maximum(1, target))
        candidates = word_ids >= 0
        num_words = tf.reduce_max(word_ids) + 1
        lengths = tf.math.bincount(tf.boolean_mask(word_ids, candidates), minlength=num_words, dtype=tf.int32)
        order = tf.argsort(tf.random.stateless_uniform([num_words], seed))
        drawn = self.ngram_lengths(num_words, tf.random.experimental.stateless_fold_in(seed, 1))
        taken = self.take_ngrams(lengths, order, tf.gather(drawn, order), target)
        return candidates & tf.gather(taken, tf.maximum(word_ids, 0))

    def take_ngrams(self, lengths: tf.Tensor, order: tf.Tensor, ngrams: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
        """Bool `[words]`: the words taken when the n-grams starting at the
        words `order` (n words each, `ngrams`, shrunk to fit) are visited in
        turn with a budget of `target` tokens; `lengths` int32 `[words]`
        tokens per word."""
        words = tf.size(lengths)
        ends = tf.concat([[0], tf.cumsum(lengths)], axis=0)  # ends[k]: tokens in words [0, k)
        sizes = tf.range(1, self.ngram + 1)
        index = tf.range(words)

        def take(state, visit):
            count, taken = state
            start, n = visit
            stops = tf.minimum(start + sizes, words)  # n-grams run short at the last word
            tokens = tf.gather(ends, stops) - ends[start]
            fits = (sizes <= n) & (count + tokens <= target)
            size = tf.reduce_max(tf.where(fits, sizes, 0))  # the longest n-gram up to n that fits; 0: none
            span = (index >= start) & (index < start + size)
            ok = (size > 0) & ~tf.reduce_any(span & taken)
            count = tf.where(ok, count + tf.reduce_sum(tf.where(span, lengths, 0)), count)
            return count, taken | (span & ok)

        _, taken = tf.foldl(take, (order, ngrams), initializer=(tf.constant(0, tf.int32), tf.zeros([words], tf.bool)))
        return taken

    def __call__(self, example: dict[str, tf.Tensor], index: tf.Tensor, seed: int) -> dict[str, tf.Tensor]:
        """The model's features for one example of
        `kner.data.pretraining_data.parse_example`, masked with the draws of
        `(seed, index)`:

        - `token_ids`, `segment_ids` int32, `padding_mask` bool `[max_seq_length]`;
        - `masked_lm_positions`, `masked_lm_ids` int32 and `masked_lm_weights`
          float32 `[max_predictions_per_seq]` (positions ascending, zero padded);
        - `next_sentence_label` int32 `[]`;
        - `example_seed` int64 `[2]`: the example's own seed (module doc).
        """
        token_ids, word_ids = example["token_ids"], example["word_ids"]
        index = tf.cast(index, tf.int64)
        seeds = [tf.stack([tf.constant(seed, tf.int64), index * 4 + k]) for k in range(4)]
        chosen = self.choose(word_ids, seeds[0])
        length = tf.size(token_ids)
        draw, keep = (tf.random.stateless_uniform([length], s) for s in seeds[1:3])
        random_ids = tf.random.stateless_uniform([length], seeds[3], 0, self.vocab_size, dtype=tf.int32)
        # Of the tokens not turned into [MASK], the share kept (BERT: 0.1 / 0.2; ELECTRA: all).
        rest = 1.0 - self.mask_probability
        kept_share = (rest - self.random_probability) / rest if rest > 0 else 1.0
        replaced = tf.where(
            draw < self.mask_probability, self.mask_id, tf.where(keep < kept_share, token_ids, random_ids)
        )
        inputs = tf.where(chosen, replaced, token_ids)
        positions = tf.cast(tf.where(chosen)[:, 0], tf.int32)
        count = tf.size(positions)
        pad = self.max_predictions_per_seq - count
        padding = self.max_seq_length - length
        return {
            "token_ids": tf.pad(inputs, [[0, padding]]),
            "segment_ids": tf.pad(example["segment_ids"], [[0, padding]]),
            "padding_mask": tf.sequence_mask(length, self.max_seq_length),
            "masked_lm_positions": tf.pad(positions, [[0, pad]]),
            "masked_lm_ids": tf.pad(tf.gather(token_ids, positions), [[0, pad]]),
            "masked_lm_weights": tf.pad(tf.ones([count], tf.float32), [[0, pad]]),
            "next_sentence_label": example["next_sentence_label"],
            "example_seed": tf.stack([tf.constant(seed ^ EXAMPLE_SEED_SALT, tf.int64), index]),
        }


def masked_dataset(
    records: tf.data.Dataset,
    masker: Masker,
    batch_size: int,
    seed: int,
    shuffle_buffer: int = 0,
    skip: int = 0,
    repeat: bool = True,
) -> tf.data.Dataset:
    """Batches of masked examples from parsed examples.

    With `repeat`, the examples are shuffled with a `shuffle_buffer` (seeded;
    reshuffled each pass) and repeated forever, the first `skip` examples
    dropped before any masking (to resume); full batches only. Without, one
    pass in file order, the last batch possibly short (evaluation).
    """
    if repeat:
        if shuffle_buffer > 1:
            records = records.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        records = records.repeat()
    dataset = records.enumerate().skip(skip)
    dataset = dataset.map(lambda i, x: masker(x, i, seed), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.batch(batch_size, drop_remainder=repeat).prefetch(tf.data.AUTOTUNE)
