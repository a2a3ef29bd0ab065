"""ALBERT checkpoints in Google's layout (google-research/albert) and in
brightmart's (brightmart/albert_zh), written in exactly their layout and
compared with a NumPy forward pass that follows each project's modeling.py."""

import json

import numpy as np
import pytest
import tensorflow as tf
from google_fixtures import (
    ALBERT_BLOCK,
    BERT_BLOCK,
    RandomWeights,
    as_float64,
    assert_close_on_tokens,
    attention_adder,
    block_forward,
    float32,
    gelu_tanh,
    layer_norm,
    make_inputs,
    optimizer_slots,
    read_checkpoint,
    relu,
    run_backbone,
    write_tf1_checkpoint,
    write_vocab,
)

from kner.backbones.encoder import EncoderBackbone
from kner.checkpoint import backbone_config, backbone_from_config, inspect, load_backbone, save_google_checkpoint
from kner.errors import InputError

# A Google `albert_*_zh`-style config: ReLU, the real 21,128 vocab size,
# embedding 24 != hidden 48, 3 heads, 4 layers over 2 groups of 2 inner blocks.
GOOGLE_ZH = {
    "attention_probs_dropout_prob": 0,
    "hidden_act": "relu",
    "hidden_dropout_prob": 0,
    "embedding_size": 24,
    "hidden_size": 48,
    "initializer_range": 0.02,
    "intermediate_size": 80,
    "max_position_embeddings": 40,
    "num_attention_heads": 3,
    "num_hidden_layers": 4,
    "num_hidden_groups": 2,
    "net_structure_type": 0,
    "gap_size": 0,
    "num_memory_blocks": 0,
    "inner_group_num": 2,
    "down_scale_factor": 1,
    "type_vocab_size": 2,
    "vocab_size": 21128,
}
# brightmart's `albert_config_tiny_google_fast.json` shape: more groups than
# layers (12 groups, 4 layers: only groups 0, 3, 6, 9 exist), tanh GELU.
MORE_GROUPS_THAN_LAYERS = dict(
    GOOGLE_ZH, hidden_act="gelu", vocab_size=90, num_hidden_groups=12, inner_group_num=1, num_attention_heads=6
)
# embedding_size == hidden_size: no embedding_hidden_mapping_in variable.
SAME_WIDTH = dict(
    GOOGLE_ZH, vocab_size=90, embedding_size=48, num_hidden_groups=1, inner_group_num=1, num_hidden_layers=2
)
# brightmart's `albert_config_<size>.json` keys; one block shared by 3 layers.
BRIGHTMART = {
    "attention_probs_dropout_prob": 0.0,
    "directionality": "bidi",
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.0,
    "hidden_size": 48,
    "embedding_size": 16,
    "initializer_range": 0.02,
    "intermediate_size": 96,
    "max_position_embeddings": 40,
    "num_attention_heads": 6,
    "num_hidden_layers": 3,
    "pooler_type": "first_token_transform",
    "type_vocab_size": 2,
    "vocab_size": 100,
}
ACTIVATIONS = {"relu": relu, "gelu": gelu_tanh}  # both modeling.py files' `get_activation`


def groups_used(config):
    """modeling.py: layer i runs group int(i / num_hidden_layers * num_hidden_groups)."""
    layers, groups = config["num_hidden_layers"], config["num_hidden_groups"]
    return [int(i / layers * groups) for i in range(layers)]


def google_weights(config, seed=0):
    random = RandomWeights(seed)
    e, h, i = config["embedding_size"], config["hidden_size"], config["intermediate_size"]
    weights = {
        "bert/embeddings/word_embeddings": random.table(config["vocab_size"], e),
        "bert/embeddings/position_embeddings": random.table(config["max_position_embeddings"], e),
        "bert/embeddings/token_type_embeddings": random.table(config["type_vocab_size"], e),
        **random.layer_norm("bert/embeddings/LayerNorm", e),
    }
    if e != h:
        weights.update(random.dense("bert/encoder/embedding_hidden_mapping_in", e, h))
    for group in sorted(set(groups_used(config))):
        for inner in range(config["inner_group_num"]):
            prefix = f"bert/encoder/transformer/group_{group}/inner_group_{inner}"
            weights.update(random.block(prefix, ALBERT_BLOCK, h, i))
    weights.update(random.dense("bert/pooler/dense", h, h))
    return float32(weights)


def brightmart_weights(config, seed=0):
    random = RandomWeights(seed)
    e, h, i = config["embedding_size"], config["hidden_size"], config["intermediate_size"]
    weights = {
        "bert/embeddings/word_embeddings": random.table(config["vocab_size"], e),
        "bert/embeddings/word_embeddings_2": random.kernel(e, h),
        "bert/embeddings/position_embeddings": random.table(config["max_position_embeddings"], h),
        "bert/embeddings/token_type_embeddings": random.table(config["type_vocab_size"], h),
        **random.layer_norm("bert/embeddings/LayerNorm", h),
        **random.block("bert/encoder/layer_shared", BERT_BLOCK, h, i),
        **random.dense("bert/pooler/dense", h, h),
    }
    return float32(weights)


def google_reference(config, weights, token_ids, segment_ids, mask, activation=None):
    """google-research/albert modeling.py: embeddings of width embedding_size,
    LayerNorm, embedding_hidden_mapping_in, grouped blocks, tanh pooler."""
    w = as_float64(weights)
    activation = activation or ACTIVATIONS[config["hidden_act"]]
    length = token_ids.shape[1]
    x = (
        w["bert/embeddings/word_embeddings"][token_ids]
        + w["bert/embeddings/token_type_embeddings"][segment_ids]
        + w["bert/embeddings/position_embeddings"][:length]
    )
    x = layer_norm(x, w["bert/embeddings/LayerNorm/gamma"], w["bert/embeddings/LayerNorm/beta"])
    if config["embedding_size"] != config["hidden_size"]:
        mapping = "bert/encoder/embedding_hidden_mapping_in"
        x = x @ w[f"{mapping}/kernel"] + w[f"{mapping}/bias"]
    adder = attention_adder(mask)
    for group in groups_used(config):
        for inner in range(config["inner_group_num"]):
            prefix = f"bert/encoder/transformer/group_{group}/inner_group_{inner}"
            x = block_forward(w, prefix, ALBERT_BLOCK, x, adder, config["num_attention_heads"], activation)
    return x, np.tanh(x[:, 0] @ w["bert/pooler/dense/kernel"] + w["bert/pooler/dense/bias"])


def brightmart_reference(config, weights, token_ids, segment_ids, mask):
    """brightmart/albert_zh modeling.py: embedding_lookup_factorized (token
    table times word_embeddings_2), then position and token type embeddings
    and LayerNorm at hidden_size, one shared block, tanh pooler."""
    w = as_float64(weights)
    length = token_ids.shape[1]
    x = w["bert/embeddings/word_embeddings"][token_ids] @ w["bert/embeddings/word_embeddings_2"]
    x = x + w["bert/embeddings/token_type_embeddings"][segment_ids] + w["bert/embeddings/position_embeddings"][:length]
    x = layer_norm(x, w["bert/embeddings/LayerNorm/gamma"], w["bert/embeddings/LayerNorm/beta"])
    adder = attention_adder(mask)
    for _ in range(config["num_hidden_layers"]):
        x = block_forward(
            w, "bert/encoder/layer_shared", BERT_BLOCK, x, adder, config["num_attention_heads"], ACTIVATIONS["gelu"]
        )
    return x, np.tanh(x[:, 0] @ w["bert/pooler/dense/kernel"] + w["bert/pooler/dense/bias"])


def pretraining_extras(config, weights):
    """What the releases also hold: MLM and sentence-order heads, Adam slots, global_step."""
    h, e = config["hidden_size"], config["embedding_size"]
    heads = float32(
        {
            "cls/predictions/transform/dense/kernel": np.ones((h, e)),
            "cls/predictions/transform/dense/bias": np.ones(e),
            "cls/predictions/output_bias": np.ones(config["vocab_size"]),
            "cls/seq_relationship/output_weights": np.ones((2, h)),
            "cls/seq_relationship/output_bias": np.ones(2),
        }
    )
    return {**heads, **optimizer_slots(weights), "global_step": np.int64(125_000)}


def write_google_albert(directory, config, weights):
    """Google's release layout: albert_config.json, model.ckpt-best.*,
    vocab_chinese.txt, no `checkpoint` state file."""
    directory.mkdir(parents=True)
    write_tf1_checkpoint(directory / "model.ckpt-best", {**weights, **pretraining_extras(config, weights)})
    (directory / "albert_config.json").write_text(json.dumps(config, indent=2))
    write_vocab(directory / "vocab_chinese.txt", config["vocab_size"])
    return directory


def write_brightmart_albert(directory, config, weights):
    """brightmart's release layout: albert_config_tiny.json, albert_model.ckpt.*, vocab.txt."""
    directory.mkdir(parents=True)
    write_tf1_checkpoint(directory / "albert_model.ckpt", {**weights, **pretraining_extras(config, weights)})
    (directory / "albert_config_tiny.json").write_text(json.dumps(config, indent=2))
    write_vocab(directory / "vocab.txt", config["vocab_size"])
    return directory


@pytest.fixture(scope="module")
def google_zh(tmp_path_factory):
    weights = google_weights(GOOGLE_ZH)
    return write_google_albert(tmp_path_factory.mktemp("albert") / "albert_zh", GOOGLE_ZH, weights), weights


@pytest.fixture(scope="module")
def brightmart(tmp_path_factory):
    weights = brightmart_weights(BRIGHTMART, seed=4)
    directory = write_brightmart_albert(tmp_path_factory.mktemp("albert") / "albert_tiny_zh", BRIGHTMART, weights)
    return directory, weights


def test_google_chinese_albert_relu_groups_and_real_vocab_size(google_zh):
    directory, weights = google_zh
    backbone = load_backbone(directory, max_seq_length=16)
    assert isinstance(backbone, EncoderBackbone)
    assert (backbone.layout, backbone.activation, backbone.num_groups, backbone.num_inner_repetitions) == (
        "albert",
        "relu",
        2,
        2,
    )
    inputs = make_inputs(GOOGLE_ZH, length=24)  # longer than max_seq_length: the table is kept whole
    sequence, pooled = run_backbone(backbone, inputs)
    want_sequence, want_pooled = google_reference(GOOGLE_ZH, weights, *inputs)
    assert_close_on_tokens(sequence, want_sequence, inputs[2])
    np.testing.assert_allclose(pooled, want_pooled, rtol=0, atol=1e-5)
    # keras-hub's AlbertBackbone computes the tanh GELU: far off on a ReLU checkpoint.
    gelu_sequence, _ = google_reference(GOOGLE_ZH, weights, *inputs, activation=gelu_tanh)
    assert np.abs(gelu_sequence - want_sequence)[inputs[2].astype(bool)].max() > 1e-2


@pytest.mark.parametrize("config", [MORE_GROUPS_THAN_LAYERS, SAME_WIDTH], ids=["more_groups", "same_width"])
def test_google_albert_group_and_width_variants(tmp_path, config):
    weights = google_weights(config, seed=2)
    directory = write_google_albert(tmp_path / "albert", config, weights)
    backbone = load_backbone(directory / "model.ckpt-best.index")
    inputs = make_inputs(config, length=10, seed=3)
    sequence, pooled = run_backbone(backbone, inputs)
    want_sequence, want_pooled = google_reference(config, weights, *inputs)
    assert_close_on_tokens(sequence, want_sequence, inputs[2])
    np.testing.assert_allclose(pooled, want_pooled, rtol=0, atol=1e-5)


def test_brightmart_albert_factorised_tokens_and_shared_layer(brightmart):
    directory, weights = brightmart
    backbone = load_backbone(directory)
    assert backbone.layout == "albert_brightmart"
    inputs = make_inputs(BRIGHTMART, length=12, seed=5)
    sequence, pooled = run_backbone(backbone, inputs)
    want_sequence, want_pooled = brightmart_reference(BRIGHTMART, weights, *inputs)
    assert_close_on_tokens(sequence, want_sequence, inputs[2])
    np.testing.assert_allclose(pooled, want_pooled, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "fixture, prefix, config_name, vocab",
    [
        ("google_zh", "model.ckpt-best", "albert_config.json", "vocab_chinese.txt"),
        ("brightmart", "albert_model.ckpt", "albert_config.json", "vocab.txt"),
    ],
)
def test_write_back_in_own_layout_then_load_bit_identical(request, tmp_path, fixture, prefix, config_name, vocab):
    directory, weights = request.getfixturevalue(fixture)
    source_vocab = directory / ("vocab_chinese.txt" if fixture == "google_zh" else "vocab.txt")
    backbone = load_backbone(directory)
    written = save_google_checkpoint(backbone, tmp_path / "out", vocab_file=source_vocab)
    assert written == tmp_path / "out" / prefix
    variables = read_checkpoint(written)
    assert {n: v.shape for n, v in variables.items()} == {n: v.shape for n, v in weights.items()}
    for name, value in weights.items():
        assert variables[name].dtype == np.float32
        np.testing.assert_array_equal(variables[name], value)
    config = json.loads((tmp_path / "out" / config_name).read_text())
    original = json.loads(next(directory.glob("albert_config*.json")).read_text())
    assert {key: original.get(key, 1) for key in config} == config  # the model's keys, same values
    assert (tmp_path / "out" / vocab).read_bytes() == source_vocab.read_bytes()
    reloaded = load_backbone(tmp_path / "out")
    inputs = make_inputs(original, length=9, seed=8)
    for got, want in zip(run_backbone(reloaded, inputs), run_backbone(backbone, inputs)):
        np.testing.assert_array_equal(got, want)


def test_model_dir_config_rebuilds_the_layout(brightmart, google_zh):
    for directory, _ in (brightmart, google_zh):
        backbone = load_backbone(directory)
        config = json.loads(json.dumps(backbone_config(backbone)))
        rebuilt = backbone_from_config(config)
        assert {**rebuilt.get_config(), "name": ""} == {**backbone.get_config(), "name": ""}
        assert [w.shape for w in rebuilt.weights] == [w.shape for w in backbone.weights]


def test_inspect_reports_family_and_ignored_heads(google_zh, capsys):
    directory, weights = google_zh
    inspect(directory)
    out = capsys.readouterr().out
    assert "family: albert\n" in out
    assert "hidden_act: relu" in out
    name = "bert/encoder/transformer/group_1/inner_group_1/ffn_1/intermediate/output/dense/kernel [80, 48] float32\n"
    assert name in out
    ignored = 5 + 2 * len(weights) + 1  # heads, Adam slots, global_step
    assert f"({ignored} ignored: cls 5, global_step 1, optimizer slots {2 * len(weights)})" in out
    assert "kner can load it: EncoderBackbone (albert layout, embedding 24, 2 group(s) x 2, relu) with 4 layers" in out


def broken_copy(source, target, config=None, vocab_size=None, drop=()):
    target.mkdir()
    variables = read_checkpoint(source / "model.ckpt-best")
    write_tf1_checkpoint(target / "model.ckpt-best", {k: v for k, v in variables.items() if k not in drop})
    original = json.loads((source / "albert_config.json").read_text())
    (target / "albert_config.json").write_text(json.dumps(config or original))
    write_vocab(target / "vocab_chinese.txt", vocab_size or original["vocab_size"])
    return target


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"config": dict(GOOGLE_ZH, num_hidden_groups=1)},
            r"albert_config.json \(num_hidden_layers=4, num_hidden_groups=1\) uses groups \[0\] "
            r"but the checkpoint has groups \[0, 1\]",
        ),
        (
            {"config": dict(GOOGLE_ZH, inner_group_num=1)},
            "says inner_group_num=1 but the checkpoint has 2 inner groups",
        ),
        (
            {"config": dict(GOOGLE_ZH, embedding_size=32)},
            r"variable bert/embeddings/word_embeddings has shape \[21128, 24\] but albert_config.json implies "
            r"\[21128, 32\]",
        ),
        (
            {"config": dict(GOOGLE_ZH, hidden_act="swish")},
            r"hidden_act 'swish' unsupported \(gelu, relu, tanh, linear\)",
        ),
        ({"vocab_size": 21127}, "vocab_chinese.txt: has 21127 entries but albert_config.json says vocab_size=21128"),
        (
            {"drop": ["bert/encoder/transformer/group_1/inner_group_0/LayerNorm_1/beta"]},
            "checkpoint lacks variable bert/encoder/transformer/group_1/inner_group_0/LayerNorm_1/beta",
        ),
    ],
)
def test_broken_albert_checkpoint_errors(google_zh, tmp_path, change, message):
    directory = broken_copy(google_zh[0], tmp_path / "broken", **change)
    with pytest.raises(InputError, match=message) as error:
        load_backbone(directory)
    assert "\n" not in str(error.value)


def test_missing_albert_config(brightmart, tmp_path):
    directory = tmp_path / "no_config"
    directory.mkdir()
    for path in brightmart[0].glob("albert_model.ckpt*"):
        (directory / path.name).write_bytes(path.read_bytes())
    with pytest.raises(InputError, match="albert_config.json: missing .*brightmart's albert_config_<size>.json"):
        load_backbone(directory)
    assert tf.train.load_checkpoint(str(directory / "albert_model.ckpt"))  # the checkpoint itself is fine
