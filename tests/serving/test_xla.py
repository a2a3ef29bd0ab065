"""The serving graph's XLA regions (`kner.serving.xla`, `kner.export
--jit_compile`): buckets, the padded compiled call, and a module that
answers as the default one."""

import random

import numpy as np
import pytest
import tagger_dirs
import tensorflow as tf
from tagger_dirs import toy_sentence
from test_text_tagger import long_text, outputs
from viterbi_reference import stepwise_viterbi

from kner.data.pipeline import to_features
from kner.models.artifacts import load_tagger
from kner.serving.text_tagger import TextTagger
from kner.serving.warmup import warmup_lengths
from kner.serving.xla import BUCKETS_PER_DOUBLING, LENGTH_STEP, bucket, compiled

# Texts with what tokenization must survive: nothing, emoji, a control
# character, a mix of scripts, and one of 10,000 characters (many windows).
HARD = ["", "😀张三在北京🙂", "李\x01小四去了上海市", "a张三 ０", "王五在北京的学校" * 1_250]


def test_buckets_cover_every_size_with_little_padding():
    sizes = np.arange(1, 5_000)
    buckets = bucket(tf.constant(sizes, tf.int32), LENGTH_STEP).numpy()  # element-wise
    assert (buckets >= sizes).all()
    assert (buckets < np.maximum(sizes * (1 + 1 / BUCKETS_PER_DOUBLING), sizes + LENGTH_STEP)).all()
    assert len(set(buckets[:128])) == 128 // LENGTH_STEP  # a window of 128 positions: 8 shapes
    assert len(set(buckets)) < 60
    assert [int(bucket(tf.constant(n), LENGTH_STEP)) for n in (5, 40, 129, 1_000)] == [16, 48, 144, 1_024]
    rows = [int(bucket(tf.constant(n), 1)) for n in (1, 2, 7, 8, 9, 33, 100)]
    assert rows == [1, 2, 7, 8, 9, 36, 104]


def test_a_compiled_call_equals_the_plain_one_on_any_shape():
    """Inputs padded (rows and positions), outputs sliced back, including an
    output shorter than the input by a fixed offset and a per-row one."""

    def function(batch):
        values, mask = batch["values"], batch["mask"]
        kept = tf.where(mask, values, 0.0)
        return {"later": tf.cumsum(kept, axis=1)[:, 1:], "total": tf.reduce_sum(kept, axis=1)}

    run = compiled(function)
    rng = np.random.default_rng(0)
    for rows, length in [(1, 1), (1, 17), (3, 40), (9, 129)]:
        values = rng.normal(size=(rows, length)).astype(np.float32)
        mask = np.arange(length)[None] < rng.integers(0, length + 1, size=(rows, 1))
        batch = {"values": tf.constant(values), "mask": tf.constant(mask)}
        got, expected = run(batch), function(batch)
        for key in expected:
            assert got[key].shape == expected[key].shape, key
            np.testing.assert_allclose(
                got[key], expected[key], rtol=1e-5, atol=1e-5, err_msg=key
            )  # summed in another order


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return load_tagger(tagger_dirs.toy_dir(tmp_path_factory.getbasetemp()))


def test_compiled_viterbi_is_the_stepwise_path(toy):
    """The CRF's best tags under XLA (rows and positions padded) are the
    step-by-step Viterbi path over each text's emission scores."""
    model, tokenizer, _ = toy
    rng = random.Random(5)
    texts = ["".join(toy_sentence(rng, 3).text for _ in range(9))[:n] for n in (1, 16, 17, 40, 62)]
    scores = model(to_features({"text": tf.constant(texts)}, tokenizer))
    lengths = tf.constant([len(text) for text in texts])
    decoded = model.head.decode(scores[:, : max(lengths)], lengths, compiled)
    crf = model.crf
    expected, _ = stepwise_viterbi(
        scores.numpy(),
        lengths.numpy().tolist(),
        crf.transitions.numpy() + crf._transition_penalty,
        crf.start_transitions.numpy() + crf._start_penalty,
        crf.end_transitions.numpy() + crf._end_penalty,
    )
    for row, n in enumerate(lengths.numpy()):
        assert decoded.tag_ids[row, :n].numpy().tolist() == expected[row, :n].tolist()


@pytest.mark.parametrize("head", ["crf", "span"])
def test_an_xla_module_answers_as_the_default_one(tmp_path_factory, head):
    """Texts one per request and together, long texts in windows, the hard
    texts, an empty batch: every output as without XLA (scores to float
    rounding), and predict_ids too."""
    model, tokenizer, settings = load_tagger(tagger_dirs.toy_dir(tmp_path_factory.getbasetemp(), head))
    plain = TextTagger(model, tokenizer, settings["max_seq_length"])
    xla = TextTagger(model, tokenizer, settings["max_seq_length"], jit_compile=True)
    rng = random.Random(11)
    sentences = [toy_sentence(rng, 2).text for _ in range(12)]
    requests = [[text] for text in sentences[:4]] + [sentences, HARD, [long_text(rng, 2_100, plain.window)[0]], []]
    for texts in requests:
        got, expected = outputs(xla, texts), outputs(plain, texts)
        assert got.keys() == expected.keys()
        for key, value in expected.items():
            if value.dtype == np.float32:
                np.testing.assert_allclose(got[key], value, rtol=1e-4, atol=1e-6, err_msg=key)
            else:
                np.testing.assert_array_equal(got[key], value, err_msg=key)
    batch = to_features({"text": tf.constant(sentences)}, tokenizer)
    ids = (batch["token_ids"], tf.cast(batch["padding_mask"], tf.int32), batch["segment_ids"])
    got, expected = xla.predict_ids(*ids), plain.predict_ids(*ids)
    for key, value in expected.items():
        if value.dtype == tf.float32:
            np.testing.assert_allclose(got[key], value, rtol=1e-4, atol=1e-6, err_msg=key)
        else:
            np.testing.assert_array_equal(got[key], value, err_msg=key)


def test_what_xla_cannot_compile_is_refused(tmp_path_factory, model_dir):
    model, tokenizer, settings = load_tagger(tagger_dirs.toy_dir(tmp_path_factory.getbasetemp(), "global_pointer"))
    with pytest.raises(ValueError, match="global_pointer head decodes a variable number of spans"):
        TextTagger(model, tokenizer, settings["max_seq_length"], jit_compile=True)
    with pytest.raises(ValueError, match="jit_compile takes the float32 encoder, not int8"):
        TextTagger.from_model_dir(model_dir, compute_dtype="int8", jit_compile=True)


def test_an_xla_export_warms_up_every_one_text_bucket(model_dir, tmp_path):
    """TF Serving's warm-up file of an XLA export: `serving_default`
    requests of one text, whose lengths reach every bucket a one-text
    request can (encoder: length + 2 positions; decoding: length + 1), and
    which the export answers."""
    from tensorflow_serving.apis import prediction_log_pb2

    from kner.serving.saved_model import export_model
    from kner.serving.warmup import WARMUP_REQUESTS

    version = export_model(model_dir, tmp_path, jit_compile=True)
    window = TextTagger.from_model_dir(model_dir).window
    texts = []
    for record in tf.data.TFRecordDataset(str(version / WARMUP_REQUESTS)):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        assert log.predict_log.request.model_spec.signature_name == "serving_default"
        texts += [t.decode() for t in tf.make_ndarray(log.predict_log.request.inputs["text"])]
    assert [len(text) for text in texts] == warmup_lengths(window)
    for extra in (2, 1):
        reached = {int(bucket(tf.constant(len(text) + extra), LENGTH_STEP)) for text in texts}
        every = {int(bucket(tf.constant(n + extra), LENGTH_STEP)) for n in range(window + 1)}
        assert reached == every
    answer = tf.saved_model.load(str(version)).signatures["serving_default"](text=tf.constant(texts))
    assert answer["num_chars"].numpy().tolist() == [len(text) for text in texts]


def test_warmup_lengths_of_a_512_token_window():
    """24 buckets up to 512 positions (8 per doubling from 128), each
    reached once for the encoder and once for the decoding."""
    lengths = warmup_lengths(510)
    assert lengths[0] == 0 and lengths[-1] <= 510 and len(lengths) <= 2 * 24
