"""The span head: decoding of hand-made and random logits against
lonePatient's `bert_extract_item`, teacher forcing of the end layer, the
loss against a NumPy hand computation, and a tiny trained model."""

import random

import keras
import numpy as np
import pytest
import tensorflow as tf
from tagger_dirs import TYPES, toy_dir, toy_sentence

from kner.data.labels import LabelVocab
from kner.data.spans import Span
from kner.metrics import evaluate
from kner.models.heads import build_head
from kner.models.heads.span import nearest_ends
from kner.serving.predictor import Predictor

LABELS = LabelVocab.from_types(TYPES, "bios")  # classes: 0 none, 1 loc, 2 name
LOC, NAME = 1, 2


def logits(classes: list[list[int]], width: int = 3) -> np.ndarray:
    """One-hot-ish logits [B, M, width] whose argmax is `classes`."""
    return np.eye(width, dtype=np.float32)[np.array(classes)] * 4.0


def extract_item(starts, ends, length):
    """lonePatient's `bert_extract_item` on one row of argmax classes."""
    found = []
    for i in range(length):
        if starts[i] == 0:
            continue
        for j in range(i, length):
            if ends[j] == starts[i]:
                found.append((i, j, int(starts[i]) - 1))
                break
    return found


def rows_of(spans, batch: int) -> list[list[tuple[int, int, int]]]:
    rows = [[] for _ in range(batch)]
    for row, start, end, entity_type in zip(*(t.numpy() for t in spans[:4])):
        rows[row].append((int(start), int(end), int(entity_type)))
    return rows


def test_hand_made_logits_decode_to_the_nearest_end_of_each_start():
    head = build_head("span", LABELS)
    starts = [[LOC, 0, 0, NAME, 0, LOC], [0, NAME, 0, 0, 0, 0]]
    ends = [[0, 0, LOC, 0, LOC, LOC], [0, 0, 0, 0, NAME, 0]]
    scores = tf.constant(np.concatenate([logits(starts), logits(ends)], axis=-1))
    decoded = head.decode(scores, tf.constant([6, 3]))
    # Row 0: loc 0 takes the nearest loc end (2, not 4); name 3 has no name
    # end; loc 5 ends where it starts. Row 1: the name end lies past the text.
    assert rows_of(decoded.spans, 2) == [[(0, 2, 0), (5, 5, 0)], []]
    assert decoded.spans.per_row.numpy().tolist() == [2, 0] and decoded.tags is None
    p = float(tf.nn.softmax(logits([[LOC]])[0, 0])[LOC])  # the chosen class's probability, start and end alike
    np.testing.assert_allclose(decoded.spans.score.numpy(), [p, p], rtol=1e-6)


def test_random_classes_decode_as_bert_extract_item():
    rng = np.random.default_rng(0)
    for _ in range(100):
        batch, width, classes = rng.integers(1, 4), rng.integers(0, 12), rng.integers(1, 5)
        lengths = rng.integers(0, width + 1, size=batch)
        inside = np.arange(width)[None] < lengths[:, None]
        starts, ends = (
            np.where(inside & (rng.random((batch, width)) < 0.5), rng.integers(0, classes, (batch, width)), 0)
            for _ in range(2)
        )
        spans = nearest_ends(tf.constant(starts, tf.int32), tf.constant(ends, tf.int32), int(classes))
        expected = [extract_item(starts[b], ends[b], lengths[b]) for b in range(batch)]
        assert rows_of(spans, batch) == expected
        assert spans.per_row.numpy().tolist() == [len(row) for row in expected]


@pytest.fixture
def head():
    keras.utils.set_random_seed(1)
    head = build_head("span", LABELS)
    head.scores(tf.zeros([1, 1, 8]), tf.constant([1]), None)  # builds the layers
    return head


def test_the_end_layer_reads_gold_starts_in_training_and_predicted_ones_otherwise(head):
    units = tf.random.normal([2, 5, 8])
    lengths = tf.constant([5, 3])
    gold = tf.constant([[NAME, 0, 0, LOC, 0], [0, LOC, 0, 0, 0]])
    batch = {"start_ids": gold}
    trained = head.scores(units, lengths, batch, training=True)
    decoding = head.scores(units, lengths, batch, training=False)
    start, end = head.split(trained)
    np.testing.assert_allclose(head.split(decoding)[0], start)  # the start layer is the same
    teacher = head.span_end(tf.concat([units, tf.one_hot(gold, 3)], axis=-1))
    predicted = head.span_end(tf.concat([units, tf.nn.softmax(start)], axis=-1))
    np.testing.assert_allclose(end, teacher, atol=1e-6)
    np.testing.assert_allclose(head.split(decoding)[1], predicted, atol=1e-6)
    assert np.max(np.abs(teacher - predicted)) > 1e-3
    # Serving has no targets: the predicted distribution.
    np.testing.assert_allclose(head.scores(units, lengths, None, training=True), decoding, atol=1e-6)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_the_loss_is_the_mean_of_start_and_end_cross_entropy_over_characters(smoothing):
    head = build_head("span", LABELS, label_smoothing=smoothing)
    rng = np.random.default_rng(2)
    scores = rng.normal(size=(2, 4, 6)).astype(np.float32)
    batch = {
        "start_ids": tf.constant([[1, 0, 2, 0], [0, 2, 0, 0]]),
        "end_ids": tf.constant([[0, 1, 2, 0], [0, 2, 0, 1]]),
    }
    lengths = tf.constant([4, 2])
    total = 0.0
    for b, n in enumerate([4, 2]):
        for i in range(n):
            for part, key in ((scores[b, i, :3], "start_ids"), (scores[b, i, 3:], "end_ids")):
                log_p = part - np.log(np.sum(np.exp(part)))
                nll = -log_p[batch[key].numpy()[b, i]]
                total += ((1 - smoothing) * nll + smoothing * -np.mean(log_p)) / 2
    assert float(head.loss_sum(tf.constant(scores), batch, lengths)) == pytest.approx(total, rel=1e-5)
    assert float(head.loss_count(batch, lengths)) == 6.0


def test_label_smoothing_is_checked():
    with pytest.raises(ValueError, match=r"--label_smoothing must be in \[0, 1\)"):
        build_head("span", LABELS, label_smoothing=1.0)


def test_a_tiny_set_fits(tmp_path_factory):
    """The session's toy span model (trained 150 steps on toy sentences)
    finds the names and places of new ones."""
    predictor = Predictor.from_dir(toy_dir(tmp_path_factory.getbasetemp(), "span"))
    rng = random.Random(11)
    sentences = [toy_sentence(rng, 3) for _ in range(60)]
    found = predictor.predict([s.text for s in sentences])
    predicted = [[Span(e.start, e.end, e.type) for e in entities] for entities in found]
    report = evaluate([s.text for s in sentences], [s.spans for s in sentences], predicted)
    assert report["micro"]["f1"] > 0.95, report["micro"]
