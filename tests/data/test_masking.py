"""Dynamic whole word masking: Google's create_masked_lm_predictions rules,
checked as properties over many draws."""

import numpy as np
import pytest
import tensorflow as tf

from kner.data.masking import Masker, masked_dataset

VOCAB, MASK_ID, CLS_ID, SEP_ID = 1000, 5, 3, 4
LENGTH = 64


def example(word_lengths, seed=0):
    """[CLS] words [SEP] with random non-special token ids."""
    rng = np.random.default_rng(seed)
    n = sum(word_lengths)
    word_ids = [-1, *(i for i, k in enumerate(word_lengths) for _ in range(k)), -1]
    token_ids = [CLS_ID, *rng.integers(10, VOCAB, n), SEP_ID]
    return {
        "token_ids": tf.constant(token_ids, tf.int32),
        "segment_ids": tf.zeros([n + 2], tf.int32),
        "word_ids": tf.constant(word_ids, tf.int32),
        "next_sentence_label": tf.constant(0, tf.int32),
    }


def random_words(rng, n_chars):
    lengths = []
    while sum(lengths) < n_chars:
        lengths.append(int(rng.integers(1, 5)))
    lengths[-1] -= sum(lengths) - n_chars
    return [k for k in lengths if k > 0]


MASKER = Masker(
    vocab_size=VOCAB, mask_id=MASK_ID, max_seq_length=LENGTH, masked_lm_prob=0.15, max_predictions_per_seq=8
)


def test_chosen_words_are_whole_never_special_and_maximal():
    rng = np.random.default_rng(1)
    choose = tf.function(MASKER.choose)
    for trial in range(60):
        n = int(rng.integers(3, LENGTH - 2))
        lengths = random_words(rng, n)
        ex = example(lengths, trial)
        word_ids = ex["word_ids"].numpy()
        chosen = choose(ex["word_ids"], tf.constant([7, trial], tf.int64)).numpy()
        target = min(8, max(1, round((n + 2) * 0.15)))
        assert not chosen[0] and not chosen[-1]  # [CLS], [SEP]
        assert chosen.sum() <= target
        taken = set(word_ids[chosen])
        for word, k in enumerate(lengths):
            mask = word_ids == word
            assert chosen[mask].all() or not chosen[mask].any()  # whole words only
            if word not in taken:  # Google's rule: a word is skipped only when it no longer fits
                assert chosen.sum() + k > target


def test_character_masking_predicts_exactly_round_of_the_fraction():
    for n in (5, 30, 62):
        ex = example([1] * n)
        features = MASKER(ex, tf.constant(0, tf.int64), seed=3)
        assert features["masked_lm_weights"].numpy().sum() == min(8, max(1, round((n + 2) * 0.15)))


def test_fraction_and_80_10_10_split_over_many_samples():
    rng = np.random.default_rng(2)
    masker = Masker(vocab_size=VOCAB, mask_id=MASK_ID, max_seq_length=130, max_predictions_per_seq=20)
    records = [example(random_words(rng, 126), seed) for seed in range(50)]
    data = tf.data.Dataset.from_tensor_slices({k: tf.stack([r[k] for r in records]) for k in records[0]})
    counts = {"mask": 0, "kept": 0, "random": 0}
    predicted, tokens = 0, 0
    for batch in masked_dataset(data, masker, batch_size=50, seed=9, shuffle_buffer=0).take(40):
        original = np.stack([r["token_ids"].numpy() for r in records])
        # The dataset repeats in order (no shuffle), so batch row i is record i.
        inputs = batch["token_ids"].numpy()[:, :128]
        weights = batch["masked_lm_weights"].numpy()
        positions = batch["masked_lm_positions"].numpy()
        labels = batch["masked_lm_ids"].numpy()
        padding = batch["padding_mask"].numpy()
        for row in range(50):
            real = weights[row] > 0
            p = positions[row][real]
            assert (np.diff(p) > 0).all() and (p > 0).all() and (p < 127).all()  # sorted, never [CLS]/[SEP]/padding
            assert padding[row][p].all()
            np.testing.assert_array_equal(labels[row][real], original[row][p])
            got = inputs[row][p]
            counts["mask"] += int((got == MASK_ID).sum())
            counts["kept"] += int((got == original[row][p]).sum())
            counts["random"] += int(((got != MASK_ID) & (got != original[row][p])).sum())
            predicted += int(real.sum())
            tokens += 128
    assert predicted / tokens == pytest.approx(0.15, abs=0.01)  # 19 of 128 when words fit exactly
    assert counts["mask"] / predicted == pytest.approx(0.8, abs=0.015)
    assert counts["kept"] / predicted == pytest.approx(0.1, abs=0.01)
    assert counts["random"] / predicted == pytest.approx(0.1, abs=0.01)


def test_same_seed_same_masks_new_masks_each_pass():
    records = [example([2, 1, 3, 2, 1, 1, 2, 3, 1, 2, 2, 1, 3, 1, 2, 1, 1, 2, 3], s) for s in range(4)]
    data = tf.data.Dataset.from_tensor_slices({k: tf.stack([r[k] for r in records]) for k in records[0]})

    def first_batches(seed, skip=0):
        dataset = masked_dataset(data, MASKER, batch_size=4, seed=seed, shuffle_buffer=4, skip=skip)
        return [b["masked_lm_positions"].numpy() for b in dataset.take(3)]

    a, b, c = first_batches(1), first_batches(1), first_batches(2)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert any((x != y).any() for x, y in zip(a, c))
    # Resuming after one batch sees the second and third batches again.
    resumed = first_batches(1, skip=4)
    np.testing.assert_array_equal(resumed[0], a[1])
    np.testing.assert_array_equal(resumed[1], a[2])
