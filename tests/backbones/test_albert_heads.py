"""ALBERT pretraining output: the checkpoint `MaskedLMModel` writes for
`kner.pretrain --model_type=albert` is Google's `albert_*_zh` layout with the
masked-LM and sentence-order heads, its logits equal a NumPy forward pass of
google-research/albert (`modeling.py` and `run_pretraining.py`'s
`get_masked_lm_output`, `get_sentence_order_output`) reading the variables
by their original names, and it reloads bit-identical."""

import json

import keras
import numpy as np
from google_fixtures import layer_norm, make_inputs, read_checkpoint, relu, write_vocab
from test_albert import GOOGLE_ZH, google_reference, google_weights

from kner.backbones import bert_heads
from kner.checkpoint import backbone_from_config, inspect, load_backbone, locate_checkpoint
from kner.models.pretraining import MaskedLMModel, dummy_features

# Google's Chinese ALBERT shape (ReLU, embedding 24 != hidden 48, 4 layers in
# 2 groups of 2 inner blocks) with a small vocab.
CONFIG = dict(GOOGLE_ZH, vocab_size=90)
# The heads' variables as google-research/albert run_pretraining.py names them.
HEADS = {
    "cls/predictions/transform/dense/kernel": [48, 24],
    "cls/predictions/transform/dense/bias": [24],
    "cls/predictions/transform/LayerNorm/gamma": [24],
    "cls/predictions/transform/LayerNorm/beta": [24],
    "cls/predictions/output_bias": [90],
    "cls/seq_relationship/output_weights": [2, 48],
    "cls/seq_relationship/output_bias": [2],
}


def reference_logits(w, sequence, pooled, positions):
    """`get_masked_lm_output` up to the logits (dense to embedding_size with
    the config's activation, layer_norm, tied word embeddings, output bias)
    and `get_sentence_order_output`'s logits, in float64."""
    gathered = np.take_along_axis(sequence, positions[:, :, None], axis=1)
    x = relu(gathered @ w["cls/predictions/transform/dense/kernel"] + w["cls/predictions/transform/dense/bias"])
    x = layer_norm(x, w["cls/predictions/transform/LayerNorm/gamma"], w["cls/predictions/transform/LayerNorm/beta"])
    masked_lm = x @ w["bert/embeddings/word_embeddings"].T + w["cls/predictions/output_bias"]
    sentence_order = pooled @ w["cls/seq_relationship/output_weights"].T + w["cls/seq_relationship/output_bias"]
    return masked_lm, sentence_order


def random_model(seed=0) -> MaskedLMModel:
    """An ALBERT with SOP whose every weight (LayerNorms and biases included)
    is random, so that none of them can go unread."""
    model = MaskedLMModel(backbone_from_config(CONFIG), sentence_task="sop")
    model(dummy_features())
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0.1, 0.5, w.shape).astype("float32") for w in model.get_weights()])
    return model


def features(length=12, predictions=4):
    token_ids, segment_ids, mask = make_inputs(CONFIG, length, seed=7)
    rng = np.random.default_rng(3)
    positions = np.stack([np.sort(rng.choice(n, predictions, replace=False)) for n in mask.sum(1)]).astype("int32")
    inputs = {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": mask.astype(bool)}
    return {**inputs, "masked_lm_positions": positions}, mask


def test_written_checkpoint_is_googles_layout_and_its_logits_equal_numpy_albert(tmp_path):
    model = random_model()
    directory = tmp_path / "albert_pretrained"
    prefix, contents = model.save_checkpoint(directory, _vocab(tmp_path))
    assert prefix == directory / "model.ckpt-best"
    assert contents == "albert layout, bert/* and cls/predictions and cls/seq_relationship"
    assert sorted(p.name for p in directory.iterdir()) == [
        "albert_config.json",
        "model.ckpt-best.data-00000-of-00001",
        "model.ckpt-best.index",
        "vocab.txt",
    ]
    config = json.loads((directory / "albert_config.json").read_text())
    assert {key: config[key] for key in ("embedding_size", "hidden_act", "num_hidden_groups", "inner_group_num")} == {
        "embedding_size": 24,
        "hidden_act": "relu",
        "num_hidden_groups": 2,
        "inner_group_num": 2,
    }
    variables = read_checkpoint(prefix)
    expected = {name: list(value.shape) for name, value in google_weights(CONFIG).items()} | HEADS
    assert {name: list(value.shape) for name, value in variables.items()} == expected
    weights = {name: value.astype(np.float64) for name, value in variables.items()}

    inputs, mask = features()
    outputs = model(inputs)
    sequence, pooled = google_reference(CONFIG, variables, inputs["token_ids"], inputs["segment_ids"], mask)
    masked_lm, sentence_order = reference_logits(weights, sequence, pooled, inputs["masked_lm_positions"])
    np.testing.assert_allclose(outputs["masked_lm_logits"].numpy(), masked_lm, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(outputs["sentence_logits"].numpy(), sentence_order, rtol=1e-5, atol=1e-5)


def test_written_checkpoint_reloads_bit_identical_heads_included(tmp_path, capsys):
    model = random_model(seed=1)
    directory = tmp_path / "albert_pretrained"
    model.save_checkpoint(directory, _vocab(tmp_path))
    files = locate_checkpoint(directory)
    assert (files.family, files.weights.name, files.vocab.name) == ("albert", "model.ckpt-best", "vocab.txt")
    keras.utils.set_random_seed(9)
    reloaded = MaskedLMModel(load_backbone(directory), sentence_task="sop")
    reloaded(dummy_features())
    for weights in reloaded.heads().values():
        bert_heads.assign_head_weights(files.weights, weights)
    assert len(reloaded.weights) == len(model.weights)
    for a, b in zip(model.weights, reloaded.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    inspect(directory)
    out = capsys.readouterr().out
    assert "family: albert\n" in out
    assert "pretraining heads: masked LM (cls/predictions), next-sentence or sentence-order prediction" in out


def _vocab(tmp_path):
    write_vocab(tmp_path / "vocab.txt", CONFIG["vocab_size"])
    return tmp_path / "vocab.txt"
