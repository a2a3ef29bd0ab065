"""GlobalPointer and Efficient GlobalPointer (kner.models.heads.pairs and
its two heads) against independent NumPy implementations of bert4keras'
formulas, the sparse loss against the dense one, and span decoding."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from tagger_dirs import tiny_config, toy_vocabulary

from kner.checkpoint import backbone_from_config
from kner.data.corpus import Sentence
from kner.data.labels import LabelVocab
from kner.data.pipeline import make_dataset
from kner.data.spans import Span
from kner.data.tokenizer import CharTokenizer
from kner.models import artifacts
from kner.models.heads import build_head
from kner.models.heads.pairs import MASKED, sparse_multilabel_loss
from kner.models.tagger import Tagger

LABELS = LabelVocab.from_types(["bod", "dis", "sym"], "bio")
LENGTHS = [6, 4, 0]
D = 8


def numpy_rotary(x: np.ndarray) -> np.ndarray:
    """Each pair (x_2i, x_2i+1) at position p turned by the angle p * 10000^(-2i/D)."""
    out = np.empty_like(x)
    depth = x.shape[-1]
    for p in range(x.shape[1]):
        for i in range(depth // 2):
            angle = p * 10000.0 ** (-2 * i / depth)
            a, b = x[:, p, ..., 2 * i], x[:, p, ..., 2 * i + 1]
            out[:, p, ..., 2 * i] = a * np.cos(angle) - b * np.sin(angle)
            out[:, p, ..., 2 * i + 1] = a * np.sin(angle) + b * np.cos(angle)
    return out


def masked(scores: np.ndarray) -> np.ndarray:
    """Scores with padding rows and columns and end < start at MASKED."""
    out = np.full_like(scores, MASKED)
    for b, n in enumerate(LENGTHS):
        for start in range(n):
            out[b, :, start, start:n] = scores[b, :, start, start:n]
    return out


def head_and_units(name: str, seed: int = 0):
    keras.utils.set_random_seed(seed)
    head = build_head(name, LABELS, head_size=D)
    units = np.random.default_rng(seed).normal(size=(3, 6, 16)).astype(np.float32)
    return head, units, head.scores(tf.constant(units), tf.constant(LENGTHS), None).numpy()


def test_global_pointer_scores_are_bert4keras_formula():
    head, units, scores = head_and_units("global_pointer")
    kernel, bias = (w.numpy().astype(np.float64) for w in head.global_pointer.weights)
    projected = (units @ kernel + bias).reshape(3, 6, 3, 2 * D)  # per type: q = first D, k = last D
    q, k = numpy_rotary(projected[..., :D]), numpy_rotary(projected[..., D:])
    expected = masked(np.einsum("bmtd,bntd->btmn", q, k) / np.sqrt(D))
    assert scores.shape == (3, 3, 6, 6)
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-5)
    assert (scores[0, :, 3, :3] == MASKED).all() and (scores[1, :, :, 4:] == MASKED).all()


def test_efficient_global_pointer_scores_are_bert4keras_formula():
    head, units, scores = head_and_units("efficient_global_pointer", seed=1)
    kernel, bias = (w.numpy().astype(np.float64) for w in head.pointer.weights)
    type_kernel, type_bias = (w.numpy().astype(np.float64) for w in head.type_bias.weights)
    projected = units @ kernel + bias  # [B, M, 2D]
    q, k = numpy_rotary(projected[..., ::2]), numpy_rotary(projected[..., 1::2])
    shared = np.einsum("bmd,bnd->bmn", q, k) / np.sqrt(D)
    biases = (projected @ type_kernel + type_bias) / 2  # [B, M, 2T]
    expected = np.empty((3, 3, 6, 6))
    for t in range(3):  # even channels along the end axis, odd ones along the start axis
        expected[:, t] = shared + biases[:, None, :, 2 * t] + biases[:, :, None, 2 * t + 1]
    np.testing.assert_allclose(scores, masked(expected), rtol=1e-5, atol=1e-5)


def dense_loss(scores: np.ndarray, gold: set) -> np.ndarray:
    """bert4keras' dense `multilabel_categorical_crossentropy` per (row, type),
    over the spans that are not masked, in float64."""
    batch, types, length, _ = scores.shape
    out = np.zeros((batch, types))
    for b in range(batch):
        for t in range(types):
            flat = scores[b, t].reshape(-1).astype(np.float64)
            labels = np.zeros_like(flat)
            for s, e in ((s, e) for tt, s, e in gold[b] if tt == t):
                labels[s * length + e] = 1
            valid = flat > MASKED / 2
            positives, negatives = flat[valid & (labels == 1)], flat[valid & (labels == 0)]
            out[b, t] = np.logaddexp.reduce(np.append(-positives, 0)) + np.logaddexp.reduce(np.append(negatives, 0))
    return out


def gold_share(scores: np.ndarray, gold: list[set]) -> np.ndarray:
    """Per (row, type): the gold spans' share of the mass 1 + sum exp(score)."""
    share = np.zeros(scores.shape[:2])
    for b, t in np.ndindex(*share.shape):
        flat = scores[b, t][scores[b, t] > MASKED / 2].astype(np.float64)
        positives = [scores[b, t, s, e] for tt, s, e in gold[b] if tt == t]
        share[b, t] = np.exp(positives).sum() / (1 + np.exp(flat).sum())
    return share


@pytest.mark.parametrize("shift", [0.0, 4.0, -3.0])
def test_sparse_loss_equals_the_dense_loss(shift):
    """Random scores and gold spans; `shift` moves the gold scores up (the
    positives often hold most of the mass) or down (they do not). Where
    they do not, the two agree to 1e-4; where they do, the sparse form
    takes the negatives' mass as the total less the gold spans' (as
    bert4keras' does), and agrees up to float32's cancellation error: a few
    units in the last place of the total, over the negatives' share."""
    rng = np.random.default_rng(int(shift * 10) + 70)
    shares = []
    for _ in range(8):
        lengths = rng.integers(0, 9, size=4)
        raw = rng.normal(scale=3.0, size=(4, 3, 9, 9))
        gold = []
        for n in lengths:
            pairs = [(s, e) for s in range(n) for e in range(s, n)]
            picks = rng.choice(len(pairs) * 3, size=min(rng.integers(0, 6), len(pairs) * 3), replace=False)
            gold.append({(int(p % 3), *pairs[p // 3]) for p in picks})
        for b, spans in enumerate(gold):
            for t, s, e in spans:
                raw[b, t, s, e] += shift
        scores = np.full(raw.shape, MASKED)
        for b, n in enumerate(lengths):
            for s in range(n):
                scores[b, :, s, s:n] = raw[b, :, s, s:n]
        width = max(1, max(len(g) for g in gold))
        labels = np.full((4, width, 3), -1, np.int32)
        for b, spans in enumerate(gold):
            if spans:
                labels[b, : len(spans)] = sorted(spans)
        got = sparse_multilabel_loss(tf.constant(scores, tf.float32), tf.constant(labels)).numpy()
        expected, share = dense_loss(scores, gold), gold_share(scores, gold)
        minor = share < 0.5
        np.testing.assert_allclose(got[minor], expected[minor], rtol=1e-4, atol=1e-6)
        total = np.log1p(np.exp(np.where(scores > MASKED / 2, scores, -np.inf)).sum(axis=(2, 3)))
        bound = 8 * np.spacing(np.float32(np.maximum(total, 1))) / (1 - share)
        assert (np.abs(got - expected)[~minor] < bound[~minor]).all()
        shares += share[minor & (share > 0)].tolist()
    assert len(shares) > 10  # cases with gold spans that do not hold most of the mass


def test_sparse_loss_takes_a_batch_without_gold_spans():
    scores = tf.random.normal([2, 3, 4, 4])
    loss = sparse_multilabel_loss(scores, tf.zeros([2, 0, 3], tf.int32)).numpy()
    np.testing.assert_allclose(loss, dense_loss(scores.numpy(), [set(), set()]), rtol=1e-5)


SENTENCES = [
    Sentence("肺内病变伴右肺门增大", [Span(0, 3, "sym"), Span(0, 1, "bod"), Span(5, 7, "bod"), Span(5, 7, "sym")]),
    Sentence("", []),
    Sentence("发热", [Span(0, 1, "sym")]),
]


@pytest.fixture(scope="module")
def batch():
    vocabulary = toy_vocabulary() + list("肺内病变伴右门增大发热")
    model_labels = LABELS
    (first,) = make_dataset(
        SENTENCES, CharTokenizer(vocabulary), build_head("global_pointer", model_labels).targets, batch_size=3
    )[0]
    return first, vocabulary


def test_gold_spans_travel_sparsely_at_character_offsets(batch):
    data, _ = batch
    assert data["span_labels"].shape == (3, 4, 3)
    assert data["span_labels"].numpy()[0].tolist() == [[0, 0, 1], [0, 5, 7], [2, 0, 3], [2, 5, 7]]
    assert data["span_labels"].numpy()[1].tolist() == [[-1, -1, -1]] * 4


@pytest.mark.parametrize("name", ["global_pointer", "efficient_global_pointer"])
def test_the_tagger_trains_a_pair_head(batch, name):
    data, vocabulary = batch
    keras.utils.set_random_seed(3)
    model = Tagger(backbone_from_config(tiny_config(len(vocabulary))), LABELS, head=name, head_size=D, dropout=0.0)
    model(artifacts.dummy_batch())
    with tf.GradientTape() as tape:
        scores = model(data, training=True)
        loss = model.loss_sum(data, scores)
    assert scores.shape == (3, 3, 11, 11) and scores.dtype == tf.float32
    gradients = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None and np.isfinite(tf.convert_to_tensor(g).numpy()).all() for g in gradients)
    assert float(model.loss_count(data)) == 2 * 3  # sentences with characters x types
    expected = sparse_multilabel_loss(scores, data["span_labels"]).numpy()[[0, 2]].sum()
    assert float(loss) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("name", ["global_pointer", "efficient_global_pointer"])
def test_a_pair_head_trains_in_mixed_bfloat16_and_under_xla(batch, name):
    """`--mixed_precision=mixed_bfloat16`: the encoder in bfloat16, the
    head's scores, loss and gradients in float32, the loss near float32's;
    `--jit_compile`: the head's scores, loss and gradients compile to one XLA
    program and equal eager ones (the encoder compiles for every head; the
    CLI test of both flags: tests/test_demo.py)."""
    data, vocabulary = batch

    def tagger() -> Tagger:
        keras.utils.set_random_seed(3)
        model = Tagger(backbone_from_config(tiny_config(len(vocabulary))), LABELS, head=name, head_size=D, dropout=0.0)
        model(artifacts.dummy_batch())
        return model

    reference = tagger()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = tagger()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    model.set_weights(reference.get_weights())
    assert model.backbone.compute_dtype == "bfloat16"
    with tf.GradientTape() as tape:
        scores = model(data, training=True)
        loss = model.loss_sum(data, scores)
    gradients = tape.gradient(loss, model.trainable_variables)
    assert scores.dtype == loss.dtype == tf.float32
    assert {g.dtype for g in gradients} == {tf.float32}
    assert all(np.isfinite(tf.convert_to_tensor(g).numpy()).all() for g in gradients)
    assert float(loss) == pytest.approx(float(reference.loss_sum(data, reference(data, training=True))), rel=0.02)

    head, units, _ = head_and_units(name)
    spans = tf.constant([[[0, 0, 1], [2, 0, 3]], [[1, 2, 2], [-1, -1, -1]], [[-1, -1, -1]] * 2], tf.int32)

    weights = [w for layer in head.layers.values() for w in layer.trainable_weights]
    lengths = tf.constant(LENGTHS)

    def step(units):
        with tf.GradientTape() as tape:
            tape.watch(units)
            loss = head.loss_sum(head.scores(units, lengths, None), {"span_labels": spans}, lengths)
        return loss, tape.gradient(loss, [units, *weights])

    eager, xla = step(tf.constant(units)), tf.function(step, jit_compile=True)(tf.constant(units))
    np.testing.assert_allclose(xla[0], eager[0], rtol=1e-5)
    for a, b in zip(xla[1], eager[1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def spans_of(decoded, types) -> list[list[Span]]:
    spans = decoded.spans
    rows = [[] for _ in spans.per_row.numpy()]
    for r, s, e, t in zip(*(x.numpy() for x in (spans.row, spans.start, spans.end, spans.type))):
        rows[r].append(Span(int(s), int(e), types[t]))
    return rows


def test_decoding_nested_flat_and_threshold():
    scores = np.full((2, 3, 5, 5), MASKED, np.float32)
    scores[0, 2, 0, 3] = 2.0  # sym 0-3
    scores[0, 0, 0, 1] = 1.0  # bod 0-1, nested
    scores[0, 0, 2, 4] = 0.5  # bod 2-4, crosses 0-3
    scores[0, 1, 4, 4] = 0.2  # dis 4-4, inside 2-4
    scores[1, 1, 1, 1] = -0.5  # below the threshold
    lengths = tf.constant([5, 2])
    nested = build_head("global_pointer", LABELS)
    decoded = nested.decode(tf.constant(scores), lengths)
    assert spans_of(decoded, LABELS.types) == [
        [Span(0, 1, "bod"), Span(0, 3, "sym"), Span(2, 4, "bod"), Span(4, 4, "dis")],
        [],
    ]
    np.testing.assert_allclose(decoded.spans.score.numpy()[1], 1 / (1 + np.exp(-2.0)), rtol=1e-6)
    assert decoded.tags is None
    flat = build_head("global_pointer", LABELS, "flat").decode(tf.constant(scores), lengths)
    assert spans_of(flat, LABELS.types) == [[Span(0, 3, "sym"), Span(4, 4, "dis")], []]
    low = build_head("global_pointer", LABELS, decode_threshold=-1.0).decode(tf.constant(scores), lengths)
    assert spans_of(low, LABELS.types)[1] == [Span(1, 1, "dis")]
    assert low.spans.per_row.numpy().tolist() == [4, 1]


def test_head_size_must_be_even():
    with pytest.raises(ValueError, match="--head_size must be an even number"):
        build_head("global_pointer", LABELS, head_size=7)
