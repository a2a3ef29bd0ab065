"""Dynamic whole word masking: Google's create_masked_lm_predictions rules,
checked as properties over many draws."""

import numpy as np
import pytest
import tensorflow as tf

from kner.data.masking import Masker, masked_dataset
from kner.data.pretraining_data import ExampleConfig, parse_example, prepare_examples
from kner.data.tokenizer import CharTokenizer, build_vocab

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


@pytest.mark.parametrize(("mask", "random"), [(0.8, 0.1), (0.85, 0.0)], ids=["bert-80-10-10", "electra-85-0-15"])
def test_fraction_and_mask_random_kept_split_over_many_samples(mask, random):
    rng = np.random.default_rng(2)
    masker = Masker(
        vocab_size=VOCAB,
        mask_id=MASK_ID,
        max_seq_length=130,
        max_predictions_per_seq=20,
        mask_probability=mask,
        random_probability=random,
    )
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
    assert counts["mask"] / predicted == pytest.approx(mask, abs=0.015)
    assert counts["kept"] / predicted == pytest.approx(1 - mask - random, abs=0.01)
    if random:
        assert counts["random"] / predicted == pytest.approx(random, abs=0.01)
    else:
        assert counts["random"] == 0


def test_example_seeds_are_per_example_and_reproducible():
    ex = example([2, 1, 3, 2, 1])
    seeds = [MASKER(ex, tf.constant(i, tf.int64), seed=5)["example_seed"].numpy().tolist() for i in (0, 1, 0)]
    assert seeds[0] == seeds[2] != seeds[1]
    assert MASKER(ex, tf.constant(0, tf.int64), seed=6)["example_seed"].numpy().tolist() != seeds[0]
    # ELECTRA's split changes what the chosen tokens become, not which are chosen.
    electra = Masker(VOCAB, MASK_ID, LENGTH, 0.15, 8, mask_probability=0.85, random_probability=0.0)
    for index in range(5):
        a, b = (m(ex, tf.constant(index, tf.int64), seed=5) for m in (MASKER, electra))
        np.testing.assert_array_equal(a["masked_lm_positions"], b["masked_lm_positions"])
    with pytest.raises(ValueError, match="mask and random probabilities"):
        Masker(VOCAB, MASK_ID, mask_probability=0.95, random_probability=0.1)


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


def albert_selection(word_lengths, order, drawn, num_to_predict, max_ngram):
    """The token positions google-research/albert `create_masked_lm_predictions`
    takes (its selection loop, transcribed), given the visiting order of the
    words (its `rng.shuffle(ngram_indexes)`) and the n drawn at each visit
    (its `np.random.choice(ngrams, p=pvals)`); positions count from 0."""
    cand_indexes, start = [], 0
    for k in word_lengths:
        cand_indexes.append(list(range(start, start + k)))
        start += k
    ngram_indexes = [[cand_indexes[idx : idx + n] for n in range(1, max_ngram + 1)] for idx in range(len(cand_indexes))]
    masked_lms, covered_indexes = [], set()
    for cand_index_set, n in zip([ngram_indexes[i] for i in order], drawn):
        if len(masked_lms) >= num_to_predict:
            break
        if not cand_index_set:
            continue
        index_set = sum(cand_index_set[n - 1], [])
        n -= 1
        while len(masked_lms) + len(index_set) > num_to_predict:
            if n == 0:
                break
            index_set = sum(cand_index_set[n - 1], [])
            n -= 1
        if len(masked_lms) + len(index_set) > num_to_predict:
            continue
        if any(index in covered_indexes for index in index_set):
            continue
        for index in index_set:
            covered_indexes.add(index)
            masked_lms.append(index)
    return covered_indexes


def test_ngram_lengths_are_drawn_with_probability_proportional_to_one_over_n():
    draws = Masker(VOCAB, MASK_ID, ngram=3).ngram_lengths(tf.constant(30000), tf.constant([4, 2], tf.int64)).numpy()
    frequencies = np.bincount(draws, minlength=4)[1:] / draws.size
    expected = np.array([1, 1 / 2, 1 / 3]) / (1 + 1 / 2 + 1 / 3)  # 6/11, 3/11, 2/11
    np.testing.assert_allclose(frequencies, expected, atol=0.01)
    assert set(Masker(VOCAB, MASK_ID).ngram_lengths(tf.constant(50), tf.constant([4, 2], tf.int64)).numpy()) == {1}


def test_ngram_selection_equals_alberts_loop_shrinking_to_fit_the_budget():
    rng = np.random.default_rng(5)
    masker = Masker(VOCAB, MASK_ID, ngram=3)
    take = tf.function(
        masker.take_ngrams, input_signature=[tf.TensorSpec([None], tf.int32)] * 3 + [tf.TensorSpec([], tf.int32)]
    )
    multiword = 0
    for trial in range(80):
        lengths = random_words(rng, int(rng.integers(3, 60)))
        order = rng.permutation(len(lengths))
        drawn = rng.choice([1, 2, 3], len(lengths), p=[6 / 11, 3 / 11, 2 / 11])
        target = int(rng.integers(1, 20))
        taken = take(*(tf.constant(x, tf.int32) for x in (lengths, order, drawn, target))).numpy()
        positions = {i for i, word in enumerate(np.repeat(np.arange(len(lengths)), lengths)) if taken[word]}
        assert positions == albert_selection(lengths, order, drawn, target, 3), trial
        words = np.flatnonzero(taken)
        multiword += int((np.diff(words) == 1).any())
    assert multiword > 20  # n-grams of several words are taken, not only single words


def test_ngram_masks_never_split_a_jieba_word(tmp_path):
    text = "清晨的江边总是很安静。几位老人在柳树下打太极拳。卖豆浆的小车慢慢推过石板路。图书馆重新装修了。"
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join([text] * 4) + "\n", encoding="utf-8")
    tok = CharTokenizer(build_vocab([text]))
    data = prepare_examples([("line", corpus)], tok, ExampleConfig(64, sentence_task="sop"), corpus.parent, "train")
    records = tf.data.TFRecordDataset(str(data.path)).map(parse_example)
    masker = Masker(tok.vocabulary_size, MASK_ID, max_seq_length=64, masked_lm_prob=0.3, ngram=3)
    choose = tf.function(masker.choose)
    spans = 0
    for index, ex in enumerate(records.repeat(10)):
        chosen = choose(ex["word_ids"], tf.constant([11, index], tf.int64)).numpy()
        word_ids = ex["word_ids"].numpy()
        for word in set(word_ids[word_ids >= 0]):
            assert chosen[word_ids == word].all() or not chosen[word_ids == word].any()
        spans += len(set(word_ids[chosen]))
    assert spans > 0
