import functools
import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf
from tagger_dirs import TYPES, tiny_config, toy_vocabulary

from kner.checkpoint import backbone_from_config
from kner.data.corpus import Sentence
from kner.data.labels import LabelVocab
from kner.data.pipeline import char_mask, make_dataset
from kner.data.spans import Span
from kner.data.tags import TagError
from kner.data.tokenizer import CharTokenizer
from kner.models import artifacts
from kner.models.tagger import Tagger

LABELS = LabelVocab.from_types(TYPES, "bioes")
SENTENCES = [
    Sentence("张三在北京", [Span(0, 1, "name"), Span(3, 4, "loc")]),
    Sentence("的", []),
    Sentence("", []),  # [CLS] [SEP] only: nothing to label
    Sentence("王五去了上海市的大学", [Span(0, 1, "name"), Span(4, 6, "loc")]),
]


@functools.cache
def tagger(head: str, decoding: str = "viterbi") -> Tagger:
    keras.utils.set_random_seed(1)
    vocabulary = toy_vocabulary()
    config = tiny_config(len(vocabulary))
    model = Tagger(backbone_from_config(config), LABELS, head=head, dropout=0.0, decoding=decoding)
    model(artifacts.dummy_batch())
    if head == "crf":  # non-zero transitions, so a wrong alignment would show
        for weight in model.crf.trainable_variables:
            weight.assign(keras.random.normal(weight.shape, seed=2))
    return model


@pytest.fixture(scope="module")
def batch():
    (first,) = make_dataset(SENTENCES, CharTokenizer(toy_vocabulary()), LABELS, batch_size=4)[0]
    return first


def char_rows(batch):
    """(row, number of characters) of each sentence."""
    return list(enumerate(char_mask(batch["padding_mask"]).numpy().sum(axis=1).tolist()))


def test_the_head_reads_the_characters_after_cls(batch):
    """Scores, labels and the label mask line up: position i is character i."""
    model = tagger("softmax")
    scores = model(batch)
    assert scores.shape[:2] == batch["label_ids"].shape == (4, batch["token_ids"].shape[1] - 1)
    np.testing.assert_array_equal(batch["label_mask"], char_mask(batch["padding_mask"]))
    np.testing.assert_array_equal(model.lengths(batch), [5, 1, 0, 10])
    sequence = model.backbone({k: batch[k] for k in ("token_ids", "segment_ids", "padding_mask")})["sequence_output"]
    np.testing.assert_allclose(scores, model.classifier(sequence)[:, 1:], rtol=1e-6, atol=1e-7)


def test_softmax_loss_is_the_cross_entropy_summed_over_characters(batch):
    model = tagger("softmax")
    scores = model(batch).numpy()
    labels = batch["label_ids"].numpy()
    expected = 0.0
    for row, chars in char_rows(batch):
        for position in range(chars):  # the head's position 0 is the first character
            logits = scores[row, position].astype(np.float64)
            expected -= logits[labels[row, position]] - np.log(np.exp(logits).sum())
    assert float(model.loss_sum(batch, scores)) == pytest.approx(expected, rel=1e-5)
    assert float(model.loss_count(batch)) == sum(chars for _, chars in char_rows(batch)) == 16


def test_crf_loss_is_the_negative_log_likelihood_of_each_unpadded_sentence(batch):
    model = tagger("crf")
    scores = model(batch)
    labels = batch["label_ids"]
    expected = 0.0
    for row, chars in char_rows(batch):
        if chars:
            unpadded = scores[row : row + 1, :chars], labels[row : row + 1, :chars]
            expected -= float(model.crf.log_likelihood(*unpadded)[0])
    assert float(model.loss_sum(batch, scores)) == pytest.approx(expected, rel=1e-5)
    assert float(model.loss_count(batch)) == 3  # sentences with characters


def best_valid_path(log_probs: np.ndarray) -> list[int]:
    """Brute force: the sequence the strict reader accepts with the highest
    sum of log-probabilities."""
    best, best_score = [], -np.inf
    for path in itertools.product(range(len(LABELS)), repeat=len(log_probs)):
        score = log_probs[np.arange(len(path)), path].sum()
        if score > best_score:
            try:
                LABELS.decode(path, strict=True)
            except TagError:
                continue
            best, best_score = list(path), score
    return best


@pytest.mark.parametrize("head, decoding", [("softmax", "argmax"), ("softmax", "viterbi"), ("crf", "viterbi")])
def test_decode_tags_characters_only(batch, head, decoding):
    model = tagger(head, decoding)
    scores = model(batch)
    decoded = model.decode(batch, scores)
    tags = np.pad(decoded.tag_ids.numpy(), [[0, 0], [1, 0]])  # at token positions
    mask = char_mask(batch["padding_mask"]).numpy()
    assert not tags[~mask].any()
    assert (decoded.tags.numpy()[~mask[:, 1:]] == b"").all()
    for row, chars in char_rows(batch):
        unpadded = scores[row : row + 1, :chars]
        names = [t.decode() for t in decoded.tags[row, :chars].numpy()]
        assert names == [LABELS.tags[i] for i in tags[row, 1 : chars + 1]]
        row_spans = decoded.spans.row.numpy() == row
        found = zip(*(getattr(decoded.spans, k).numpy()[row_spans] for k in ("start", "end", "type")))
        assert [Span(int(s), int(e), model.head.type_names[t]) for s, e, t in found] == LABELS.decode(names_ids(names))[
            0
        ]
        if head == "crf":
            expected = model.crf.decode(unpadded)[0].numpy()[0] if chars else []
        elif decoding == "argmax":
            expected = np.argmax(unpadded.numpy()[0], axis=-1)
        elif chars <= 5:
            expected = best_valid_path(tf.nn.log_softmax(unpadded[0]).numpy()) if chars else []
        else:
            LABELS.decode(tags[row, 1 : chars + 1], strict=True)  # too long to enumerate: valid at least
            continue
        np.testing.assert_array_equal(tags[row, 1 : chars + 1], expected)
    assert tags[mask].any()  # random weights do not tag everything `O`


def names_ids(names: list[str]) -> list[int]:
    return [LABELS.tag_to_id(name) for name in names]


def test_softmax_viterbi_repairs_what_argmax_breaks(batch):
    """With the same weights, argmax yields sequences the strict reader
    rejects (random weights), constrained Viterbi never does."""
    viterbi, argmax = tagger("softmax", "viterbi"), tagger("softmax", "argmax")
    scores = viterbi(batch)
    np.testing.assert_array_equal(scores, argmax(batch))
    rows = [(row, chars) for row, chars in char_rows(batch) if chars]
    argmax_tags = np.pad(argmax.decode(batch, scores).tag_ids.numpy(), [[0, 0], [1, 0]])
    viterbi_tags = np.pad(viterbi.decode(batch, scores).tag_ids.numpy(), [[0, 0], [1, 0]])

    def valid(tags, row, chars):
        try:
            LABELS.decode(tags[row, 1 : chars + 1], strict=True)
        except TagError:
            return False
        return True

    assert not all(valid(argmax_tags, row, chars) for row, chars in rows)
    assert all(valid(viterbi_tags, row, chars) for row, chars in rows)


def test_argmax_decoding_is_for_the_softmax_head_only():
    with pytest.raises(ValueError, match="--decode=argmax does not apply to the crf head"):
        Tagger(backbone_from_config(tiny_config(40)), LABELS, head="crf", decoding="argmax")


def test_every_trainable_variable_gets_a_gradient(batch):
    model = tagger("crf")
    with tf.GradientTape() as tape:
        loss = model.loss_sum(batch, model(batch, training=True))
    gradients = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None for g in gradients)
    assert not {v.path for v in model.trainable_variables} & {v.path for v in model.backbone.pooled_dense.weights}


def test_unknown_head_is_rejected():
    with pytest.raises(ValueError, match="head must be one of"):
        Tagger(backbone_from_config(tiny_config(40)), LABELS, head="lstm")


@pytest.mark.parametrize("layout, embedding_size", [("albert_brightmart", 16), ("electra", 16), ("albert", 32)])
def test_every_family_backbone_trains_under_the_tagger(batch, layout, embedding_size):
    """ALBERT and ELECTRA `EncoderBackbone`s (ELECTRA has no pooler): every
    trainable variable gets a gradient."""
    config = {**tiny_config(len(toy_vocabulary()), layers=2), "embedding_size": embedding_size, "kner_layout": layout}
    model = Tagger(backbone_from_config(config), LABELS, head="crf", dropout=0.0)
    with tf.GradientTape() as tape:
        loss = model.loss_sum(batch, model(batch, training=True))
    gradients = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None for g in gradients) and np.isfinite(loss.numpy())
    pooler = model.backbone.pooled_dense
    assert (pooler is None) == (layout == "electra")
    if pooler is not None:
        assert not {v.path for v in model.trainable_variables} & {v.path for v in pooler.weights}


def graph_ops(function, batch) -> set[tuple[str, str | None]]:
    """(op type, dtype attribute T) of the ops `function(batch)` traces to."""
    graph = tf.function(function).get_concrete_function(batch).graph
    ops = set()
    for op in graph.get_operations():
        dtype = op.get_attr("T") if "T" in op.node_def.attr else None
        ops.add((op.type, getattr(dtype, "name", None)))
    return ops


@pytest.mark.parametrize("head", ["softmax", "crf"])
def test_mixed_bfloat16_runs_the_encoder_in_bfloat16_and_the_head_in_float32(batch, head):
    reference = tagger(head)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = Tagger(backbone_from_config(tiny_config(len(toy_vocabulary()))), LABELS, head=head, dropout=0.0)
        model(artifacts.dummy_batch())
    finally:
        keras.mixed_precision.set_global_policy("float32")
    model.set_weights(reference.get_weights())
    assert {v.dtype for v in model.variables} == {"float32"}  # what the optimizer updates
    assert model.backbone.compute_dtype == "bfloat16" and model.classifier.compute_dtype == "float32"

    scores = model(batch)
    assert scores.dtype == tf.float32
    np.testing.assert_allclose(scores, reference(batch), atol=0.05)
    loss = model.loss_sum(batch, scores)
    assert loss.dtype == tf.float32
    assert float(loss) == pytest.approx(float(reference.loss_sum(batch, reference(batch))), rel=0.02)

    ops = graph_ops(lambda b: model.loss_sum(b, model(b, training=True)), batch)
    matmuls = {dtype for op, dtype in ops if op in ("MatMul", "BatchMatMulV2")}
    assert matmuls == {"bfloat16", "float32"}  # the encoder's, and the classifier's
    # LayerNorm statistics (mean and variance) and the loss's reductions.
    assert {dtype for op, dtype in ops if op in ("Mean", "SquaredDifference", "Rsqrt", "Log", "Exp")} == {"float32"}


def test_the_head_reads_the_labelled_units_in_order():
    """With a label mask that skips positions (the other sub-tokens of a
    word), the head's unit i is the i-th masked position."""
    sequence = tf.reshape(tf.range(2 * 6, dtype=tf.float32), [2, 6, 1])
    mask = tf.constant([[False, True, False, True, True, False], [False, True, True, False, False, False]])
    states = Tagger.unit_states(sequence, {"label_mask": mask, "padding_mask": tf.ones([2, 6], tf.bool)})
    assert states.shape == (2, 5, 1)
    assert states.numpy()[0, :3, 0].tolist() == [1, 3, 4]
    assert states.numpy()[1, :2, 0].tolist() == [7, 8]
    assert Tagger.lengths({"label_mask": mask}).numpy().tolist() == [3, 2]
