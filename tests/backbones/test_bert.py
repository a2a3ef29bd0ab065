import json
import logging
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from google_fixtures import (
    BERT_BLOCK,
    REPO,
    RandomWeights,
    as_float64,
    attention_adder,
    block_forward,
    float32,
    gelu_tanh,
    layer_norm,
    make_inputs,
    optimizer_slots,
    run_backbone,
    write_tf1_checkpoint,
    write_vocab,
)

from kner.checkpoint import (
    backbone_from_config,
    bert_config_from_backbone,
    inspect,
    load_backbone,
    locate_checkpoint,
    save_google_checkpoint,
)
from kner.errors import InputError

SMALL = {
    "vocab_size": 120,
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 128,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 40,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
}
# The real Chinese vocab size, 6 heads of 16, 3 layers, 3 segment types.
CHINESE = dict(
    SMALL,
    vocab_size=21128,
    hidden_size=96,
    num_hidden_layers=3,
    num_attention_heads=6,
    intermediate_size=160,
    max_position_embeddings=64,
    type_vocab_size=3,
)


# --- Google-format fixture (tests/backbones/google_fixtures.py writes it like run_pretraining.py) ---


def google_weights(config, seed=0):
    """Random weights under Google's BERT names and shapes."""
    random = RandomWeights(seed)
    h, i = config["hidden_size"], config["intermediate_size"]
    weights = {
        "bert/embeddings/word_embeddings": random.table(config["vocab_size"], h),
        "bert/embeddings/position_embeddings": random.table(config["max_position_embeddings"], h),
        "bert/embeddings/token_type_embeddings": random.table(config["type_vocab_size"], h),
        **random.layer_norm("bert/embeddings/LayerNorm", h),
    }
    for n in range(config["num_hidden_layers"]):
        weights.update(random.block(f"bert/encoder/layer_{n}", BERT_BLOCK, h, i))
    weights.update(random.dense("bert/pooler/dense", h, h))
    return float32(weights)


def pretraining_extras(config, weights):
    """What real downloads also hold: MLM/NSP heads, Adam slots, global_step."""
    h, v = config["hidden_size"], config["vocab_size"]
    heads = {
        "cls/predictions/transform/dense/kernel": np.ones((h, h)),
        "cls/predictions/transform/dense/bias": np.ones(h),
        "cls/predictions/transform/LayerNorm/gamma": np.ones(h),
        "cls/predictions/transform/LayerNorm/beta": np.ones(h),
        "cls/predictions/output_bias": np.ones(v),
        "cls/seq_relationship/output_weights": np.ones((2, h)),
        "cls/seq_relationship/output_bias": np.ones(2),
    }
    extras = float32(heads)
    extras.update(optimizer_slots({**weights, **extras}))
    extras["global_step"] = np.int64(1_000_000)
    return extras


def write_google_dir(directory, config, weights):
    directory.mkdir(parents=True)
    variables = dict(weights, **pretraining_extras(config, weights))
    write_tf1_checkpoint(directory / "bert_model.ckpt", variables)
    (directory / "bert_config.json").write_text(json.dumps(config))
    write_vocab(directory / "vocab.txt", config["vocab_size"])
    return directory


# --- Reference forward pass in NumPy, following Google's modeling.py ---


def reference_forward(config, weights, token_ids, segment_ids, mask):
    w = as_float64(weights)
    length = token_ids.shape[1]
    x = (
        w["bert/embeddings/word_embeddings"][token_ids]
        + w["bert/embeddings/position_embeddings"][:length]
        + w["bert/embeddings/token_type_embeddings"][segment_ids]
    )
    x = layer_norm(x, w["bert/embeddings/LayerNorm/gamma"], w["bert/embeddings/LayerNorm/beta"])
    adder = attention_adder(mask)
    for n in range(config["num_hidden_layers"]):
        x = block_forward(w, f"bert/encoder/layer_{n}", BERT_BLOCK, x, adder, config["num_attention_heads"], gelu_tanh)
    pooled = np.tanh(x[:, 0] @ w["bert/pooler/dense/kernel"] + w["bert/pooler/dense/bias"])
    return x, pooled


def assert_matches_reference(backbone, config, weights, length):
    inputs = make_inputs(config, length)
    sequence, pooled = run_backbone(backbone, inputs)
    want_sequence, want_pooled = reference_forward(config, weights, *inputs)
    real = inputs[2].astype(bool)
    np.testing.assert_allclose(sequence[real], want_sequence[real], rtol=0, atol=1e-5)
    np.testing.assert_allclose(pooled, want_pooled, rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def small_weights():
    return google_weights(SMALL)


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory, small_weights):
    return write_google_dir(tmp_path_factory.mktemp("ckpt") / "small", SMALL, small_weights)


@pytest.fixture(scope="module")
def small_backbone(small_dir):
    return load_backbone(small_dir)


def test_loads_google_checkpoint_like_modeling_py(small_backbone, small_weights):
    assert_matches_reference(small_backbone, SMALL, small_weights, length=12)


def test_loads_chinese_vocab_size_from_prefix_keeping_position_table(tmp_path):
    weights = google_weights(CHINESE, seed=3)
    directory = write_google_dir(tmp_path / "cn", CHINESE, weights)
    backbone = load_backbone(directory / "bert_model.ckpt", max_seq_length=16)
    table = backbone.position_embedding.position_embeddings
    assert tuple(table.shape) == (64, 96)
    assert backbone.num_segments == 3
    # Longer than max_seq_length, up to max_position_embeddings, still works.
    assert_matches_reference(backbone, CHINESE, weights, length=40)


def test_save_google_checkpoint_round_trip(small_backbone, small_weights, small_dir, tmp_path):
    prefix = save_google_checkpoint(small_backbone, tmp_path / "out", small_dir / "vocab.txt")
    assert prefix == tmp_path / "out" / "bert_model.ckpt"
    reader = tf.train.load_checkpoint(str(prefix))
    shapes = reader.get_variable_to_shape_map()
    assert shapes == {name: list(value.shape) for name, value in small_weights.items()}
    for name, value in small_weights.items():
        assert reader.get_variable_to_dtype_map()[name] == tf.float32
        np.testing.assert_array_equal(reader.get_tensor(name), value)
    saved_config = json.loads((tmp_path / "out" / "bert_config.json").read_text())
    assert saved_config == SMALL
    assert (tmp_path / "out" / "vocab.txt").read_bytes() == (small_dir / "vocab.txt").read_bytes()
    inputs = make_inputs(SMALL, 10, seed=5)
    reloaded = load_backbone(tmp_path / "out")
    for got, want in zip(run_backbone(reloaded, inputs), run_backbone(small_backbone, inputs)):
        np.testing.assert_array_equal(got, want)


def test_backbone_from_config_file_and_dict(small_dir):
    backbone = backbone_from_config(small_dir / "bert_config.json")
    assert (backbone.vocabulary_size, backbone.hidden_dim, backbone.num_heads) == (
        120,
        64,
        4,
    )
    assert (backbone.num_layers, backbone.intermediate_dim) == (2, 128)
    assert bert_config_from_backbone(backbone) == SMALL
    wide = backbone_from_config(dict(SMALL, initializer_range=0.5))
    kernel = wide.transformer_layers[0]._feedforward_intermediate_dense.kernel.numpy()
    assert 0.3 < kernel.std() < 0.5  # truncated normal with stddev 0.5
    with pytest.raises(InputError, match="hidden_act 'relu' unsupported"):
        backbone_from_config(dict(SMALL, hidden_act="relu"))
    with pytest.raises(InputError, match="config lacks type_vocab_size"):
        backbone_from_config({k: v for k, v in SMALL.items() if k != "type_vocab_size"})


def huggingface_tensors(weights):
    """Google weights under `BertForPreTraining`'s safetensors names."""
    tensors = {}
    for name, value in weights.items():
        key = name.replace("/", ".").replace("layer_", "layer.")
        if key.endswith(".kernel"):
            key, value = key[: -len("kernel")] + "weight", value.T
        elif key.endswith(".gamma"):
            key = key[: -len("gamma")] + "weight"
        elif key.endswith(".beta"):
            key = key[: -len("beta")] + "bias"
        elif key.endswith("_embeddings"):
            key += ".weight"
        tensors[key] = np.ascontiguousarray(value)
    return tensors


def write_huggingface_dir(directory, weights, vocab_source, **config):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    directory.mkdir()
    tensors = huggingface_tensors(weights)
    safetensors_numpy.save_file(tensors, directory / "model.safetensors")
    config = {**SMALL, "model_type": "bert", **config}
    (directory / "config.json").write_text(json.dumps(config))
    shutil.copy(vocab_source, directory / "vocab.txt")
    return directory


def test_loads_huggingface_safetensors_dir(small_backbone, small_weights, small_dir, tmp_path):
    vocab = small_dir / "vocab.txt"
    backbone = load_backbone(write_huggingface_dir(tmp_path / "hf", small_weights, vocab))
    inputs = make_inputs(SMALL, 10, seed=7)
    for got, want in zip(run_backbone(backbone, inputs), run_backbone(small_backbone, inputs)):
        np.testing.assert_array_equal(got, want)
    lacking = dict(small_weights)
    del lacking["bert/encoder/layer_1/output/dense/bias"]
    with pytest.raises(InputError, match="does not contain tensor encoder.layer.1"):
        load_backbone(write_huggingface_dir(tmp_path / "lacking", lacking, vocab))
    roberta = write_huggingface_dir(tmp_path / "roberta", small_weights, vocab, model_type="roberta")
    with pytest.raises(InputError, match="model_type 'roberta' is not 'bert'"):
        load_backbone(roberta)


def test_loading_logs_what_was_ignored_by_scope(small_dir, small_weights, caplog):
    with caplog.at_level(logging.INFO, logger="absl"):
        load_backbone(small_dir)
    slots, total = 2 * (len(small_weights) + 7), len(small_weights) + 7 + 1
    expected = f"; {total + slots} variables, {slots + 8} ignored: cls 7, global_step 1, optimizer slots {slots}"
    assert f"loaded bert checkpoint {small_dir / 'bert_model.ckpt'}: BertBackbone with 2 layers" in caplog.text
    assert expected in caplog.text


def test_pytorch_bin_only_dir_says_how_to_convert(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(dict(SMALL, model_type="bert")))
    (tmp_path / "pytorch_model.bin").write_bytes(b"not read")
    with pytest.raises(InputError, match="safe_serialization=True"):
        load_backbone(tmp_path)


def broken_copy(source, target, config=None, vocab_size=None, delete=()):
    shutil.copytree(source, target)
    if config is not None:
        (target / "bert_config.json").write_text(json.dumps(config))
    if vocab_size is not None:
        write_vocab(target / "vocab.txt", vocab_size)
    for name in delete:
        (target / name).unlink()
    return target


@pytest.mark.parametrize(
    "change, message",
    [
        ({"delete": ["bert_config.json"]}, r"bert_config.json: missing \(every Google"),
        (
            {"delete": ["bert_model.ckpt.data-00000-of-00001"]},
            "missing checkpoint data file",
        ),
        (
            {"delete": ["bert_model.ckpt.index"]},
            r"bert_model.ckpt.index: missing checkpoint index",
        ),
        (
            {"vocab_size": 119},
            r"vocab.txt: has 119 entries but bert_config.json says vocab_size=120",
        ),
        (
            {"config": dict(SMALL, hidden_size=96, num_attention_heads=6)},
            (
                r"variable bert/embeddings/word_embeddings has shape \[120, 64\] "
                r"but bert_config.json implies \[120, 96\]"
            ),
        ),
        (
            {"config": dict(SMALL, num_hidden_layers=3)},
            "bert_config.json says num_hidden_layers=3 but the checkpoint has 2 encoder layers",
        ),
        (
            {"config": dict(SMALL, intermediate_size=100)},
            "layer_0/intermediate/dense/kernel has shape",
        ),
    ],
)
def test_broken_checkpoint_errors(small_dir, tmp_path, change, message):
    directory = broken_copy(small_dir, tmp_path / "broken", **change)
    with pytest.raises(InputError, match=message) as error:
        load_backbone(directory)
    assert "\n" not in str(error.value)


def test_variable_errors(tmp_path, small_weights):
    config = dict(SMALL, num_hidden_layers=1)
    weights = {name: v for name, v in small_weights.items() if "layer_1" not in name}
    lacking = dict(weights)
    del lacking["bert/encoder/layer_0/attention/self/key/bias"]
    write_tf1_checkpoint(tmp_path / "lacking" / "bert_model.ckpt", lacking)
    (tmp_path / "lacking" / "bert_config.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match="lacks variable bert/encoder/layer_0/attention/self/key/bias"):
        load_backbone(tmp_path / "lacking")
    unknown = dict(weights, **{"bert/encoder/layer_0/relative_positions": np.ones(3, "float32")})
    write_tf1_checkpoint(tmp_path / "unknown" / "model.ckpt-500", unknown)
    (tmp_path / "unknown" / "bert_config.json").write_text(json.dumps(config))
    with pytest.raises(
        InputError,
        match="unknown BERT variable bert/encoder/layer_0/relative_positions",
    ):
        load_backbone(tmp_path / "unknown" / "model.ckpt-500.index")


def test_path_and_length_errors(small_dir, tmp_path):
    with pytest.raises(InputError, match="no such checkpoint directory or prefix"):
        load_backbone(tmp_path / "nowhere")
    with pytest.raises(InputError, match="not a checkpoint directory: expected a Google TF1 checkpoint"):
        load_backbone(tmp_path)
    with pytest.raises(
        InputError,
        match="max_seq_length 41 exceeds the checkpoint's max_position_embeddings 40",
    ):
        load_backbone(small_dir, max_seq_length=41)
    assert locate_checkpoint(small_dir / "bert_model.ckpt").vocab == small_dir / "vocab.txt"


def test_inspect_prints_config_and_variables(small_dir, capsys):
    inspect(small_dir)
    out = capsys.readouterr().out
    assert "hidden_size: 64" in out
    assert "bert/encoder/layer_1/attention/self/query/kernel [64, 64] float32\n" in out
    assert "global_step [] int64  (ignored)" in out
    assert "cls/seq_relationship/output_weights [2, 64] float32  (ignored)" in out
    assert "kner can load it: BertBackbone with 2 layers, hidden 64, 4 heads" in out


@pytest.mark.slow
def test_cli_inspect_broken_checkpoint_exits_2(small_dir, tmp_path):
    broken = broken_copy(small_dir, tmp_path / "broken", config=dict(SMALL, num_hidden_layers=3))
    result = subprocess.run(
        [sys.executable, "-m", "kner.checkpoint", "inspect", str(broken)],
        check=False,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    # Earlier stderr lines are TensorFlow's own start-up log.
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {broken / 'bert_model.ckpt'}: bert_config.json says num_hidden_layers=3 "
        "but the checkpoint has 2 encoder layers"
    )
    assert "hidden_size: 64" in result.stdout


@pytest.mark.parametrize(
    "layers, hidden, intermediate",
    [(24, 64, 96), (36, 64, 96), (1, 1024, 4096)],
    ids=["24_layers", "36_layers", "1024_wide"],
)
def test_large_bert_shapes_load(tmp_path, layers, hidden, intermediate):
    """RoBERTa-wwm-ext-large (24L/1024, 16 heads) and the zoo's 36L/1024
    models: their depth with 16 heads, and their width, each with a small
    vocab (a whole 24L/1024 model is 1.2 GB per copy)."""
    config = dict(
        SMALL,
        vocab_size=40,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=16,
        intermediate_size=intermediate,
        max_position_embeddings=16,
    )
    weights = google_weights(config, seed=layers)
    directory = tmp_path / "large"
    directory.mkdir()
    # The core SaveV2 op writes what a TF1 Saver would, with less memory.
    tf.raw_ops.SaveV2(
        prefix=str(directory / "bert_model.ckpt"),
        tensor_names=list(weights),
        shape_and_slices=[""] * len(weights),
        tensors=list(weights.values()),
    )
    (directory / "bert_config.json").write_text(json.dumps(config))
    write_vocab(directory / "vocab.txt", config["vocab_size"])
    backbone = load_backbone(directory)
    assert (backbone.num_layers, backbone.num_heads, backbone.hidden_dim) == (layers, 16, hidden)
    assert_matches_reference(backbone, config, weights, length=10)


@pytest.mark.parametrize(
    ("release", "vocab", "pieces"),
    [
        ("cased_L-1_H-32_A-2", "bert-base-cased-vocab.txt", ["Zürich", "Hospital"]),
        ("uncased_L-1_H-32_A-2", "bert-base-uncased-vocab.txt", ["zurich", "hospital"]),
    ],
)
def test_english_checkpoints_load_with_their_vocab_and_casing(tmp_path, release, vocab, pieces):
    """Google's English BERT layout (cased and uncased): the weights load as
    modeling.py computes them, on the ids WordPiece gives with the casing the
    release's folder name implies."""
    from shared_data import shared_file

    from kner.backbones.casing import checkpoint_casing
    from kner.data.tokenizer_registry import default_tokenizer, make_tokenizer
    from kner.data.vocab import read_vocab

    source = shared_file(f"vocab/{vocab}")
    vocabulary = read_vocab(source)
    config = dict(SMALL, vocab_size=len(vocabulary), hidden_size=32, num_hidden_layers=1, num_attention_heads=2)
    weights = google_weights(config, seed=3)
    directory = tmp_path / release
    directory.mkdir()
    write_tf1_checkpoint(directory / "bert_model.ckpt", dict(weights, **pretraining_extras(config, weights)))
    (directory / "bert_config.json").write_text(json.dumps(config))
    shutil.copyfile(source, directory / "vocab.txt")

    assert read_vocab(locate_checkpoint(directory).vocab) == vocabulary
    casing = checkpoint_casing(directory)
    assert casing.lowercase == release.startswith("uncased")
    assert default_tokenizer(vocabulary) == "wordpiece"
    tokenizer = make_tokenizer("wordpiece", vocabulary, casing.lowercase)
    ids = tokenizer.encode("Zürich Hospital")
    assert [vocabulary[i] for i in ids] == pieces
    backbone = load_backbone(directory)
    token_ids = np.array([[tokenizer.cls_id, *ids, tokenizer.sep_id]], np.int32)
    inputs = (token_ids, np.zeros_like(token_ids), np.ones_like(token_ids))
    sequence, _ = run_backbone(backbone, inputs)
    want, _ = reference_forward(config, weights, *inputs)
    np.testing.assert_allclose(sequence, want, rtol=0, atol=1e-5)
