"""ELECTRA discriminators in Google's layout (google-research/electra), as HFL
released them for Chinese, written in exactly that layout and compared with a
NumPy forward pass that follows electra's model/modeling.py."""

import json

import numpy as np
import pytest
from google_fixtures import (
    BERT_BLOCK,
    RandomWeights,
    as_float64,
    assert_close_on_tokens,
    attention_adder,
    block_forward,
    float32,
    gelu_erf,
    gelu_tanh,
    layer_norm,
    make_inputs,
    optimizer_slots,
    read_checkpoint,
    run_backbone,
    write_tf1_checkpoint,
    write_vocab,
)

from kner.checkpoint import backbone_config, backbone_from_config, inspect, load_backbone, save_google_checkpoint
from kner.errors import InputError

# HFL's config/small_discriminator_config.json keys (HF style), scaled down:
# embedding 32 != hidden 64 (ELECTRA-small style), 4 heads, 3 layers.
SMALL = {
    "_num_labels": 2,
    "architectures": ["ElectraForPreTraining"],
    "attention_probs_dropout_prob": 0.1,
    "embedding_size": 32,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 64,
    "initializer_range": 0.02,
    "intermediate_size": 112,
    "layer_norm_eps": 1e-12,
    "max_position_embeddings": 40,
    "model_type": "electra",
    "num_attention_heads": 4,
    "num_hidden_layers": 3,
    "pad_token_id": 0,
    "summary_type": "first",
    "type_vocab_size": 2,
    "vocab_size": 120,
}
# ELECTRA-base style: embedding_size == hidden_size, so no embeddings_project.
BASE = dict(SMALL, embedding_size=48, hidden_size=48, num_attention_heads=6, num_hidden_layers=2)


def discriminator_weights(config, seed=0):
    random = RandomWeights(seed)
    e, h, i = config["embedding_size"], config["hidden_size"], config["intermediate_size"]
    weights = {
        "electra/embeddings/word_embeddings": random.table(config["vocab_size"], e),
        "electra/embeddings/position_embeddings": random.table(config["max_position_embeddings"], e),
        "electra/embeddings/token_type_embeddings": random.table(config["type_vocab_size"], e),
        **random.layer_norm("electra/embeddings/LayerNorm", e),
    }
    if e != h:
        weights.update(random.dense("electra/embeddings_project", e, h))
    for n in range(config["num_hidden_layers"]):
        weights.update(random.block(f"electra/encoder/layer_{n}", BERT_BLOCK, h, i))
    return float32(weights)


def pretraining_extras(config, weights):
    """The rest of a pre-training checkpoint: the generator (sharing the
    embeddings, with its own projection and 1 smaller layer), both heads,
    Adam slots, global_step."""
    random = RandomWeights(99)
    e, g = config["embedding_size"], config["hidden_size"] // 2
    extras = {
        **random.dense("generator/embeddings_project", e, g),
        **random.block("generator/encoder/layer_0", BERT_BLOCK, g, 2 * g),
        **random.dense("generator_predictions/dense", g, e),
        **random.layer_norm("generator_predictions/LayerNorm", e),
        "generator_predictions/output_bias": np.zeros(config["vocab_size"]),
        **random.dense("discriminator_predictions/dense", config["hidden_size"], config["hidden_size"]),
        **random.dense("discriminator_predictions/dense_1", config["hidden_size"], 1),
    }
    extras = float32(extras)
    return {**extras, **optimizer_slots({**weights, **extras}), "global_step": np.int64(1_000_000)}


def write_hfl_electra(directory, config, weights, name="electra_small", with_config=True):
    """HFL's release layout: electra_small.{index,data-*}, vocab.txt,
    discriminator.json (absent in the earliest archives)."""
    directory.mkdir(parents=True)
    write_tf1_checkpoint(directory / name, {**weights, **pretraining_extras(config, weights)})
    if with_config:
        (directory / "discriminator.json").write_text(json.dumps(config, indent=2))
        (directory / "generator.json").write_text(json.dumps(dict(config, hidden_size=32), indent=2))
    write_vocab(directory / "vocab.txt", config["vocab_size"])
    return directory


def reference_forward(config, weights, token_ids, segment_ids, mask, gelu=gelu_erf):
    """electra model/modeling.py `BertModel`: embeddings of width
    embedding_size, LayerNorm, `embeddings_project` when the widths differ,
    the BERT blocks with the erf GELU; pooled output = first token."""
    w = as_float64(weights)
    length = token_ids.shape[1]
    x = (
        w["electra/embeddings/word_embeddings"][token_ids]
        + w["electra/embeddings/token_type_embeddings"][segment_ids]
        + w["electra/embeddings/position_embeddings"][:length]
    )
    x = layer_norm(x, w["electra/embeddings/LayerNorm/gamma"], w["electra/embeddings/LayerNorm/beta"])
    if config["embedding_size"] != config["hidden_size"]:
        x = x @ w["electra/embeddings_project/kernel"] + w["electra/embeddings_project/bias"]
    adder = attention_adder(mask)
    for n in range(config["num_hidden_layers"]):
        x = block_forward(w, f"electra/encoder/layer_{n}", BERT_BLOCK, x, adder, config["num_attention_heads"], gelu)
    return x, x[:, 0]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    weights = discriminator_weights(SMALL)
    return write_hfl_electra(tmp_path_factory.mktemp("electra") / "electra_small", SMALL, weights), weights


def test_loads_hfl_small_discriminator_like_modeling_py(small):
    directory, weights = small
    backbone = load_backbone(directory, max_seq_length=32)
    assert (backbone.layout, backbone.activation, backbone.pooled_dense) == ("electra", "gelu", None)
    inputs = make_inputs(SMALL, length=14)
    sequence, pooled = run_backbone(backbone, inputs)
    want_sequence, want_pooled = reference_forward(SMALL, weights, *inputs)
    assert_close_on_tokens(sequence, want_sequence, inputs[2])
    np.testing.assert_allclose(pooled, want_pooled, rtol=0, atol=1e-5)  # no pooler: the first token
    # The tanh GELU (keras-hub's ElectraBackbone) misses the 1e-5 bar.
    tanh_sequence, _ = reference_forward(SMALL, weights, *inputs, gelu=gelu_tanh)
    assert np.abs(tanh_sequence - want_sequence)[inputs[2].astype(bool)].max() > 1e-5


def test_loads_base_shape_without_projection(tmp_path):
    weights = discriminator_weights(BASE, seed=3)
    assert "electra/embeddings_project/kernel" not in weights
    directory = write_hfl_electra(tmp_path / "electra_base", BASE, weights, name="electra_base")
    backbone = load_backbone(directory / "electra_base")
    inputs = make_inputs(BASE, length=9, seed=4)
    sequence, _ = run_backbone(backbone, inputs)
    assert_close_on_tokens(sequence, reference_forward(BASE, weights, *inputs)[0], inputs[2])


def test_write_back_in_electra_layout_then_load_bit_identical(small, tmp_path):
    directory, weights = small
    backbone = load_backbone(directory)
    prefix = save_google_checkpoint(backbone, tmp_path / "out", vocab_file=directory / "vocab.txt")
    assert prefix == tmp_path / "out" / "electra_model"
    variables = read_checkpoint(prefix)
    assert {n: v.shape for n, v in variables.items()} == {n: v.shape for n, v in weights.items()}
    for name, value in weights.items():
        assert variables[name].dtype == np.float32
        np.testing.assert_array_equal(variables[name], value)
    config = json.loads((tmp_path / "out" / "discriminator.json").read_text())
    assert {key: SMALL[key] for key in config} == config
    reloaded = load_backbone(tmp_path / "out")
    inputs = make_inputs(SMALL, length=7, seed=6)
    for got, want in zip(run_backbone(reloaded, inputs), run_backbone(backbone, inputs)):
        np.testing.assert_array_equal(got, want)
    rebuilt = backbone_from_config(json.loads(json.dumps(backbone_config(backbone))))
    assert [w.shape for w in rebuilt.weights] == [w.shape for w in backbone.weights]
    assert rebuilt.activation == "gelu" and rebuilt.pooled_dense is None


def test_inspect_counts_generator_and_heads(small, capsys):
    directory, weights = small
    inspect(directory)
    out = capsys.readouterr().out
    assert "family: electra\n" in out
    assert "electra/embeddings_project/kernel [32, 64] float32\n" in out
    assert "discriminator_predictions/dense/kernel [64, 64] float32  (ignored)" in out
    assert "generator/encoder/layer_0/attention/self/query/kernel [32, 32] float32  (ignored)" in out
    generator = 2 + 16  # embeddings_project + one block
    slots = 2 * (len(weights) + generator + 5 + 4)
    expected = f"ignored: discriminator_predictions 4, generator {generator}, generator_predictions 5, global_step 1, "
    assert expected + f"optimizer slots {slots})" in out
    assert "kner can load it: EncoderBackbone (electra layout, embedding 32" in out


def test_early_archive_without_config_says_where_to_get_it(tmp_path):
    weights = discriminator_weights(SMALL, seed=1)
    directory = write_hfl_electra(tmp_path / "early", SMALL, weights, with_config=False)
    with pytest.raises(InputError, match="json: missing: early HFL archives .*github.com/ymcui/Chinese-ELECTRA"):
        load_backbone(directory)


def test_config_disagreeing_with_checkpoint(small, tmp_path):
    directory, _ = small
    for layers, message in (
        (2, "discriminator.json says num_hidden_layers=2 but the checkpoint has 3 encoder layers"),
    ):
        broken = tmp_path / f"layers_{layers}"
        broken.mkdir()
        for path in directory.iterdir():
            (broken / path.name).write_bytes(path.read_bytes())
        (broken / "discriminator.json").write_text(json.dumps(dict(SMALL, num_hidden_layers=layers)))
        with pytest.raises(InputError, match=message):
            load_backbone(broken)
    (broken / "discriminator.json").write_text(json.dumps(dict(SMALL, model_type="bert")))
    with pytest.raises(InputError, match="model_type 'bert' is not 'electra'"):
        load_backbone(broken)
