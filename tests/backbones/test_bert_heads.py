"""Google's pretraining heads (`cls/*`): a checkpoint written like Google's
`run_pretraining.py` loads with its heads, and kner's masked-LM and
next-sentence logits equal a NumPy forward pass of `get_masked_lm_output` and
`get_next_sentence_output`; write-then-load is bit-identical."""

import numpy as np
import pytest
import tensorflow as tf
from google_fixtures import gelu_tanh as gelu
from google_fixtures import layer_norm, make_inputs, write_tf1_checkpoint
from test_bert import SMALL, google_weights, reference_forward, write_google_dir

from kner.backbones import bert_heads
from kner.backbones.loader import save_google_checkpoint
from kner.backbones.tf1_checkpoint import read_variables
from kner.checkpoint import inspect, load_backbone
from kner.errors import InputError
from kner.models.pretraining import MaskedLMModel, dummy_features


def random_heads(config, seed=5):
    rng = np.random.default_rng(seed)
    h, v = config["hidden_size"], config["vocab_size"]
    heads = {
        "cls/predictions/transform/dense/kernel": rng.normal(0, 1 / np.sqrt(h), (h, h)),
        "cls/predictions/transform/dense/bias": rng.normal(0, 0.5, h),
        "cls/predictions/transform/LayerNorm/gamma": 1 + rng.normal(0, 0.5, h),
        "cls/predictions/transform/LayerNorm/beta": rng.normal(0, 0.5, h),
        "cls/predictions/output_bias": rng.normal(0, 0.5, v),
        "cls/seq_relationship/output_weights": rng.normal(0, 1 / np.sqrt(h), (2, h)),
        "cls/seq_relationship/output_bias": rng.normal(0, 0.5, 2),
    }
    return {name: value.astype(np.float32) for name, value in heads.items()}


def reference_masked_lm_logits(config, weights, sequence, positions):
    """Google's get_masked_lm_output up to the logits, in float64."""
    w = {name: value.astype(np.float64) for name, value in weights.items()}
    gathered = np.take_along_axis(sequence, positions[:, :, None], axis=1)
    x = gelu(gathered @ w["cls/predictions/transform/dense/kernel"] + w["cls/predictions/transform/dense/bias"])
    x = layer_norm(x, w["cls/predictions/transform/LayerNorm/gamma"], w["cls/predictions/transform/LayerNorm/beta"])
    return x @ w["bert/embeddings/word_embeddings"].T + w["cls/predictions/output_bias"]


def reference_next_sentence_logits(weights, pooled):
    w = {name: value.astype(np.float64) for name, value in weights.items()}
    return pooled @ w["cls/seq_relationship/output_weights"].T + w["cls/seq_relationship/output_bias"]


def load_model(directory, sentence_task="nsp"):
    backbone = load_backbone(directory)
    model = MaskedLMModel(backbone, sentence_task=sentence_task)
    model(dummy_features())
    for weights in model.heads().values():
        bert_heads.assign_head_weights(directory / "bert_model.ckpt", weights)
    return model


@pytest.fixture(scope="module")
def google_dir(tmp_path_factory):
    weights = google_weights(SMALL)
    directory = write_google_dir(tmp_path_factory.mktemp("google") / "ckpt", SMALL, weights)
    # write_google_dir adds all-ones heads; overwrite them with random ones in the same checkpoint layout.
    variables = {
        name: tf.train.load_checkpoint(str(directory / "bert_model.ckpt")).get_tensor(name)
        for name in read_variables(directory / "bert_model.ckpt")
    }
    heads = random_heads(SMALL)
    variables.update(heads)
    for path in directory.glob("bert_model.ckpt*"):
        path.unlink()
    write_tf1_checkpoint(directory / "bert_model.ckpt", variables)
    return directory, {**weights, **heads}


def features(config, length=12, predictions=5, seed=3):
    token_ids, segment_ids, mask = make_inputs(config, length)
    rng = np.random.default_rng(seed)
    valid = mask.sum(1)
    positions = np.stack([np.sort(rng.choice(n, predictions, replace=False)) for n in valid]).astype("int32")
    return token_ids, segment_ids, mask, positions


def test_masked_lm_and_nsp_logits_equal_googles_heads_in_numpy(google_dir):
    directory, weights = google_dir
    model = load_model(directory)
    token_ids, segment_ids, mask, positions = features(SMALL)
    outputs = model(
        {
            "token_ids": token_ids,
            "segment_ids": segment_ids,
            "padding_mask": mask.astype(bool),
            "masked_lm_positions": positions,
        }
    )
    sequence, pooled = reference_forward(SMALL, weights, token_ids, segment_ids, mask)
    expected = reference_masked_lm_logits(SMALL, weights, sequence, positions)
    np.testing.assert_allclose(outputs["masked_lm_logits"].numpy(), expected, atol=1e-5, rtol=1e-5)
    nsp = reference_next_sentence_logits(weights, pooled)
    np.testing.assert_allclose(outputs["sentence_logits"].numpy(), nsp, atol=1e-5, rtol=1e-5)
    # The epsilon is Google's: keras-hub's default 1e-5 would be visible here.
    assert model.masked_lm_head.layer_norm_epsilon == 1e-12


def test_write_then_load_is_bit_identical_heads_included(google_dir, tmp_path):
    directory, _ = google_dir
    model = load_model(directory)
    out = tmp_path / "out"
    prefix, contents = model.save_checkpoint(out, directory / "vocab.txt")
    assert (
        prefix == out / "bert_model.ckpt"
        and contents == "bert layout, bert/* and cls/predictions and cls/seq_relationship"
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "bert_config.json",
        "bert_model.ckpt.data-00000-of-00001",
        "bert_model.ckpt.index",
        "vocab.txt",
    ]
    original = tf.train.load_checkpoint(str(directory / "bert_model.ckpt"))
    written = tf.train.load_checkpoint(str(out / "bert_model.ckpt"))
    names = written.get_variable_to_shape_map()
    assert bert_heads.heads_in(names) == ["masked_lm", "seq_relationship"]
    assert not any(name.endswith(("adam_m", "adam_v")) or name == "global_step" for name in names)
    for name in names:
        np.testing.assert_array_equal(written.get_tensor(name), original.get_tensor(name), err_msg=name)
    reloaded = load_model(out)
    for a, b in zip(model.weights, reloaded.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_missing_or_misshapen_head_variables_are_named(google_dir, tmp_path):
    directory, _ = google_dir
    model = load_model(directory)
    prefix = tmp_path / "bert_model.ckpt"
    from kner.backbones.tf1_checkpoint import write_variables

    heads = {w.name: np.zeros(w.shape, np.float32) for w in model.heads()["masked_lm"]}
    write_variables(prefix, {**heads, "cls/predictions/output_bias": np.zeros(3, np.float32)})
    with pytest.raises(InputError, match="cls/predictions/output_bias has shape \\[3\\]"):
        bert_heads.assign_head_weights(prefix, model.heads()["masked_lm"])
    with pytest.raises(InputError, match="lacks variable cls/seq_relationship/output_weights"):
        bert_heads.assign_head_weights(prefix, model.heads()["seq_relationship"])


def test_inspect_says_which_heads_a_checkpoint_has(google_dir, tmp_path, capsys):
    directory, _ = google_dir
    inspect(directory)
    assert (
        "pretraining heads: masked LM (cls/predictions), next-sentence or sentence-order prediction"
        in capsys.readouterr().out
    )
    model = load_model(directory, sentence_task=None)
    model.save_checkpoint(tmp_path / "mlm", directory / "vocab.txt")
    inspect(tmp_path / "mlm")
    out = capsys.readouterr().out
    assert "pretraining heads: masked LM (cls/predictions) (kner.pretrain" in out
    save_google_checkpoint(model.backbone, tmp_path / "bare", directory / "vocab.txt")
    inspect(tmp_path / "bare")
    assert "pretraining heads: none" in capsys.readouterr().out
