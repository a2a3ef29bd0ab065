"""The distillation loss and model: soft KL at a temperature, hard loss,
hidden-state MSE over a layer map with projections, a frozen teacher."""

import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from tagger_dirs import TYPES, tiny_config, toy_vocabulary
from train_runs import REPO, child_env, read_scalars, toy_sentences

from kner.checkpoint import backbone_from_config
from kner.data.corpus import Sentence
from kner.data.labels import LabelVocab
from kner.data.pipeline import char_mask, make_dataset
from kner.data.spans import Span
from kner.data.tokenizer import CharTokenizer
from kner.data.units import WordUnits
from kner.data.unlabeled import UnlabeledInputs
from kner.data.vocab import SPECIAL_TOKENS
from kner.data.wordpiece import WordPieceTokenizer
from kner.data.words import char_spans, join_words
from kner.models import artifacts
from kner.models.distillation_losses import soft_loss_sum
from kner.models.tagger import Tagger
from kner.training.distillation import Distiller, even_layer_map, hidden_loss_sum, parse_layer_map, teacher_token_ids
from kner.training.optimization import FineTuningAdamW
from kner.training.trainer import BEST_WEIGHTS, TrainConfig, Trainer

LABELS = LabelVocab.from_types(TYPES, "bios")


def tagger(layers=1, width=32, head="crf", labels=LABELS, seed=0) -> Tagger:
    keras.utils.set_random_seed(seed)
    config = {**tiny_config(len(toy_vocabulary()), layers=layers), "hidden_size": width, "intermediate_size": 2 * width}
    model = Tagger(backbone_from_config(config), labels, head=head, dropout=0.0)
    model(artifacts.dummy_batch())
    return model


def batch(count=6, seed=1):
    dataset, _ = make_dataset(toy_sentences(count, seed), CharTokenizer(toy_vocabulary()), LABELS, batch_size=count)
    return next(iter(dataset))


def test_hidden_loss_is_the_mean_square_over_features_summed_over_unmasked_tokens():
    rng = np.random.default_rng(1)
    student, teacher = rng.normal(size=(2, 4, 3)), rng.normal(size=(2, 4, 3))
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], bool)
    expected = (((student - teacher) ** 2).mean(-1) * mask).sum()
    assert float(hidden_loss_sum(student, teacher, tf.constant(mask))) == pytest.approx(expected, rel=1e-5)


def test_layer_maps():
    assert even_layer_map(2, 4) == [(0, 0), (1, 2), (2, 4)]
    assert even_layer_map(3, 12) == [(0, 0), (1, 4), (2, 8), (3, 12)]  # TextBrewer's L3_hidden_mse
    assert even_layer_map(2, 2) == [(0, 0), (1, 1), (2, 2)]
    assert parse_layer_map("", 2, 4) == [(0, 0), (1, 2), (2, 4)]
    assert parse_layer_map("1:3, 2:4", 2, 4) == [(1, 3), (2, 4)]
    with pytest.raises(ValueError, match="out of range"):
        parse_layer_map("3:4", 2, 4)
    with pytest.raises(ValueError, match="STUDENT:TEACHER"):
        parse_layer_map("1-2", 2, 4)


def test_projections_and_matched_states_for_unequal_widths_and_depths():
    student, teacher = tagger(layers=1, width=32), tagger(layers=3, width=48, seed=1)
    distiller = Distiller(student, teacher, hard_weight=1.0)
    assert distiller.layer_map == [(0, 0), (1, 3)]
    assert [tuple(p.kernel.shape) for p in distiller.projections] == [(32, 48), (32, 48)]
    outputs = distiller(batch(), training=True)
    length = batch()["token_ids"].shape[1]
    assert [tuple(s.shape) for s in outputs["student_states"]] == [(6, length, 48)] * 2
    assert [tuple(s.shape) for s in outputs["teacher_states"]] == [(6, length, 48)] * 2
    # The projections train; the teacher does not.
    trainable = {id(v) for v in distiller.trainable_variables}
    assert all(id(v) in trainable for p in distiller.projections for v in p.weights)
    assert not any(id(v) in trainable for v in teacher.weights)
    # Equal widths: no projection.
    assert Distiller(tagger(layers=1), tagger(layers=2, seed=1)).projections == []


def test_weights_scale_their_terms_and_counts_normalise_them():
    student, teacher = tagger(layers=1, width=32), tagger(layers=2, width=48, seed=1)
    data = batch()
    unit = Distiller(student, teacher, soft_weight=1.0, hard_weight=1.0, hidden_weight=1.0, temperature=2.0)
    outputs = unit(data)
    sums = unit.loss_sum(data, outputs).numpy()
    assert np.all(sums > 0)
    weighted = Distiller(student, teacher, soft_weight=2.0, hard_weight=3.0, hidden_weight=0.5, temperature=2.0)
    weighted.projections = unit.projections  # the same projection weights
    np.testing.assert_allclose(weighted.loss_sum(data, outputs).numpy(), sums * [2.0, 3.0, 0.5], rtol=1e-5)
    # The terms are what the pieces compute, and the counts are characters,
    # the head's count and tokens.
    mask = char_mask(data["padding_mask"])[:, 1:]  # the heads' positions
    soft = soft_loss_sum(outputs["scores"], outputs["teacher_scores"], mask, 2.0)
    assert sums[0] == pytest.approx(float(soft), rel=1e-5)
    assert sums[1] == pytest.approx(float(student.loss_sum(data, outputs["scores"])), rel=1e-5)
    counts = unit.loss_count(data).numpy()
    assert counts.tolist() == [
        float(tf.reduce_sum(tf.cast(mask, tf.float32))),
        float(student.loss_count(data)),
        float(tf.reduce_sum(tf.cast(data["padding_mask"], tf.float32))),
    ]
    # A zero weight drops its term.
    assert Distiller(student, teacher, hidden_weight=0.0).loss_sum(data, unit(data))[2] == 0.0


def test_the_temperature_reaches_the_soft_loss():
    student, teacher = tagger(layers=1), tagger(layers=1, seed=1)
    data = batch()
    mask = char_mask(data["padding_mask"])[:, 1:]  # the heads' positions
    soft = []
    for temperature in (1.0, 4.0):
        distiller = Distiller(student, teacher, temperature=temperature, hidden_weight=0.0)
        outputs = distiller(data)
        soft.append(float(distiller.loss_sum(data, outputs)[0]))
        expected = soft_loss_sum(outputs["scores"], outputs["teacher_scores"], mask, temperature)
        assert soft[-1] == pytest.approx(float(expected))
    assert soft[0] != pytest.approx(soft[1])


def test_temperature_squared_scales_the_soft_term_by_t2_and_nothing_else():
    """Hinton's and DistilBERT's T**2 (`temperature_squared`), against
    TextBrewer's unscaled term: the soft term (and only it) is T**2 times
    as large, so its gradient keeps its size from T = 1 to T = 8."""
    student, teacher = tagger(layers=1), tagger(layers=1, seed=1)
    data = batch()
    for temperature in (1.0, 4.0, 8.0):
        plain = Distiller(student, teacher, temperature=temperature, hard_weight=1.0)
        scaled = Distiller(student, teacher, temperature=temperature, temperature_squared=True, hard_weight=1.0)
        outputs = plain(data)
        unscaled_terms = plain.loss_sum(data, outputs).numpy()
        scaled_terms = scaled.loss_sum(data, outputs).numpy()
        assert unscaled_terms[0] > 0
        assert scaled_terms[0] == pytest.approx(temperature**2 * unscaled_terms[0], rel=1e-6)
        np.testing.assert_array_equal(scaled_terms[1:], unscaled_terms[1:])
    mask = char_mask(data["padding_mask"])[:, 1:]  # the heads' positions
    scores, teacher_scores = outputs["scores"], outputs["teacher_scores"]
    expected = 64.0 * float(soft_loss_sum(scores, teacher_scores, mask, 8.0))
    assert float(scaled.loss_sum(data, outputs)[0]) == pytest.approx(expected, rel=1e-6)


def test_labels_must_match_and_crf_transitions_are_copied():
    teacher = tagger(layers=2, seed=1)
    teacher.crf.transitions.assign(tf.random.normal(teacher.crf.transitions.shape))
    student = tagger(layers=1)
    Distiller(student, teacher)
    np.testing.assert_array_equal(student.crf.transitions.numpy(), teacher.crf.transitions.numpy())
    assert not student.crf.trainable  # no hard loss would change them
    Distiller(student, teacher, hard_weight=1.0)
    assert student.crf.trainable
    other = LabelVocab.from_types(["loc", "org"], "bios")
    with pytest.raises(ValueError, match="labels"):
        Distiller(tagger(labels=other), teacher)
    with pytest.raises(ValueError, match="labels"):
        Distiller(tagger(labels=LabelVocab.from_types(TYPES, "bio")), teacher)
    with pytest.raises(ValueError, match="hard loss"):
        Distiller(tagger(), teacher, transitions="learn", hard_weight=0.0)
    with pytest.raises(ValueError, match="temperature"):
        Distiller(tagger(), teacher, temperature=0.0)


def test_teacher_token_ids_map_the_student_vocabulary():
    assert teacher_token_ids(["[PAD]", "a", "b", "[UNK]"], ["[PAD]", "[UNK]", "b"], 1) == [0, 1, 2, 1]


def english_sentences(count: int, seed: int) -> list[Sentence]:
    """Word-level sentences whose words split into WordPiece sub-tokens."""
    rng = np.random.default_rng(seed)
    sentences = []
    for _ in range(count):
        place, name = rng.choice(["NewYorkers", "Yorkers"]), rng.choice(["Paulwalk", "@Paul"])
        words = [name, "loves", str(place), "pizza"]
        text, offsets = join_words(words)
        spans = char_spans([Span(0, 0, "name"), Span(2, 2, "loc")], offsets)
        sentences.append(Sentence(text, spans, words=offsets))
    return sentences


def test_a_wordpiece_teacher_teaches_the_first_sub_token_of_each_word(tmp_path):
    """English task distillation: teacher and student read the labelled
    units (the first sub-token of each word, `kner.data.units.WordUnits`),
    the soft and hard terms count units, not sub-tokens, and a step trains
    the student and never the teacher."""
    vocabulary = [*SPECIAL_TOKENS, "new", "york", "##york", "##er", "##s", "love", "pizza", "paul", "##walk", "@"]
    tokenizer = WordPieceTokenizer(vocabulary, lowercase=True)
    student, teacher = tagger(layers=1, width=32, head="softmax"), tagger(layers=2, width=48, head="softmax", seed=1)
    distiller = Distiller(student, teacher, soft_weight=1.0, hard_weight=1.0, hidden_weight=1.0)
    train = english_sentences(8, seed=1)
    dataset, report = make_dataset(train, tokenizer, LABELS, batch_size=8, units=WordUnits())
    batch = next(iter(dataset))
    assert (report.moved, report.unplaced) == (0, 0)
    units = int(tf.reduce_sum(tf.cast(batch["label_mask"], tf.int32)))
    sub_tokens = int(tf.reduce_sum(tf.cast(batch["padding_mask"], tf.int32))) - 2 * len(train)
    soft, hard, tokens = distiller.loss_count(batch).numpy()
    words = sum(4 + s.text.startswith("@") for s in train)  # "@Paul": "@" and "paul", two units
    assert soft == hard == units == words < sub_tokens and tokens == sub_tokens + 2 * len(train)

    teacher_before = [w.copy() for w in teacher.get_weights()]
    student_before = [w.copy() for w in student.get_weights()]
    optimizer = FineTuningAdamW(1e-2)
    optimizer.build(distiller.trainable_variables)
    trainer = Trainer(distiller, optimizer, tf.distribute.get_strategy(), tmp_path, TrainConfig(), student)
    loss, sentences, *terms = trainer.train_step(batch).numpy()
    assert sentences == len(train) and np.isfinite(loss) and all(term > 0 for term in terms)
    for before, after in zip(teacher_before, teacher.get_weights()):
        np.testing.assert_array_equal(before, after)
    assert any(not np.array_equal(b, a) for b, a in zip(student_before, student.get_weights()))


@pytest.mark.slow
def test_training_changes_the_student_never_the_teacher_and_saves_a_plain_tagger(tmp_path):
    student, teacher = tagger(layers=1, width=32), tagger(layers=2, width=48, seed=1)
    teacher_before = [w.copy() for w in teacher.get_weights()]
    student_before = [w.copy() for w in student.get_weights()]
    distiller = Distiller(student, teacher, soft_weight=2.0, hard_weight=3.0, hidden_weight=0.5)
    optimizer = FineTuningAdamW(1e-2)
    optimizer.build(distiller.trainable_variables)
    vocabulary = toy_vocabulary()
    tokenizer = CharTokenizer(vocabulary)
    raw = tmp_path / "raw.txt"
    raw.write_text("\n".join(s.text for s in toy_sentences(30, seed=5)) + "\n", encoding="utf-8")
    config = TrainConfig(
        batch_size=4, eval_batch_size=8, epochs=1, max_seq_length=32, checkpoint_every=0, seed=3, log_every=1
    )
    train, dev = toy_sentences(12, seed=3), toy_sentences(4, seed=4)
    inputs = UnlabeledInputs([raw], tokenizer, batch_size=4, steps_per_epoch=3, max_chars=30, seed=3)
    trainer = Trainer(distiller, optimizer, tf.distribute.get_strategy(), tmp_path / "run", config, student, inputs)
    report = trainer.fit(train, dev, tokenizer)
    assert report is not None and 0.0 <= report["micro"]["f1"] <= 1.0
    for before, after in zip(teacher_before, teacher.get_weights()):
        np.testing.assert_array_equal(before, after)
    assert any(not np.array_equal(b, a) for b, a in zip(student_before, student.get_weights()))
    # TensorBoard: each term unweighted every step; the weighted terms add up to the loss.
    scalars = read_scalars(tmp_path / "run" / "train")
    terms = np.array([[v for _, v in scalars[f"loss_terms/{t}"]] for t in ("soft", "hard", "hidden")])
    assert terms.shape == (3, 3) and np.isfinite(terms).all() and (terms > 0).all()
    np.testing.assert_allclose([2.0, 3.0, 0.5] @ terms, [v for _, v in scalars["loss"]], rtol=1e-5)
    # best.weights.h5 holds the student alone: a plain Tagger loads it.
    plain = tagger(layers=1, width=32, seed=9)
    plain.load_weights(str(tmp_path / "run" / BEST_WEIGHTS))
    for expected, got in zip(student.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(expected, got)


@pytest.mark.slow
def test_mirrored_strategy_distils_with_the_same_losses_and_weights_as_one_device(tmp_path):
    command = [sys.executable, str(REPO / "tests" / "distill_child.py"), str(tmp_path), "default", "mirrored"]
    child = subprocess.run(command, cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=600)
    assert child.returncode == 0, child.stderr[-3000:]
    runs = {}
    for name in ("default", "mirrored"):
        with np.load(tmp_path / f"{name}.npz") as dump:
            runs[name] = {key: dump[key] for key in dump.files}
    default, mirrored = runs["default"], runs["mirrored"]
    assert len(default["losses"]) == 3 and np.all(default["losses"] > 0)
    np.testing.assert_allclose(mirrored["losses"], default["losses"], rtol=1e-5)
    assert default["terms"].shape == (3, 3) and np.all(default["terms"] > 0)  # soft, hard, hidden per step
    np.testing.assert_allclose(mirrored["terms"], default["terms"], rtol=1e-5)
    for key in default:
        if key not in ("losses", "terms"):
            np.testing.assert_allclose(mirrored[key], default[key], atol=1e-6, err_msg=key)
