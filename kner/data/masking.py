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
- each chosen token independently becomes `[MASK]` with probability 0.8,
  stays itself with 0.1, and becomes a token drawn uniformly from the whole
  vocab with 0.1.

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

MASK_PROBABILITY, KEEP_PROBABILITY = 0.8, 0.5  # of the chosen; then of the rest


@dataclasses.dataclass(frozen=True)
class Masker:
    """Masks one example (see the module doc) and pads it to
    `max_seq_length`."""

    vocab_size: int
    mask_id: int
    max_seq_length: int = 128
    masked_lm_prob: float = 0.15
    max_predictions_per_seq: int = 20

    def choose(self, word_ids: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """Bool `[length]`: the positions to predict, whole words at a time.

        `word_ids` int32 `[length]`, -1 for tokens never masked; `seed` int64 `[2]`."""
        length = tf.size(word_ids)
        target = tf.cast(tf.round(tf.cast(length, tf.float32) * self.masked_lm_prob), tf.int32)
        target = tf.minimum(self.max_predictions_per_seq, tf.maximum(1, target))
        candidates = word_ids >= 0
        num_words = tf.reduce_max(word_ids) + 1
        lengths = tf.math.bincount(tf.boolean_mask(word_ids, candidates), minlength=num_words, dtype=tf.int32)
        order = tf.argsort(tf.random.stateless_uniform([num_words], seed))
        ordered = tf.gather(lengths, order)

        def take(count, word_length):
            return tf.where(count + word_length <= target, count + word_length, count)

        counts = tf.scan(take, ordered, initializer=tf.constant(0, tf.int32))
        previous = tf.concat([[0], counts[:-1]], axis=0)
        taken = tf.scatter_nd(order[:, None], counts > previous, [num_words])
        return candidates & tf.gather(taken, tf.maximum(word_ids, 0))

    def __call__(self, example: dict[str, tf.Tensor], index: tf.Tensor, seed: int) -> dict[str, tf.Tensor]:
        """The model's features for one example of
        `kner.data.pretraining_data.parse_example`, masked with the draws of
        `(seed, index)`:

        - `token_ids`, `segment_ids` int32, `padding_mask` bool `[max_seq_length]`;
        - `masked_lm_positions`, `masked_lm_ids` int32 and `masked_lm_weights`
          float32 `[max_predictions_per_seq]` (positions ascending, zero padded);
        - `next_sentence_label` int32 `[]`.
        """
        token_ids, word_ids = example["token_ids"], example["word_ids"]
        index = tf.cast(index, tf.int64)
        seeds = [tf.stack([tf.constant(seed, tf.int64), index * 4 + k]) for k in range(4)]
        chosen = self.choose(word_ids, seeds[0])
        length = tf.size(token_ids)
        draw, keep = (tf.random.stateless_uniform([length], s) for s in seeds[1:3])
        random_ids = tf.random.stateless_uniform([length], seeds[3], 0, self.vocab_size, dtype=tf.int32)
        replaced = tf.where(
            draw < MASK_PROBABILITY, self.mask_id, tf.where(keep < KEEP_PROBABILITY, token_ids, random_ids)
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
