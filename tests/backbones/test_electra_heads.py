"""The checkpoint `kner.pretrain --model_type=electra` writes: the variable
names and shapes of HFL's chinese-electra-small release and of
google-research/electra's small configuration (listed here from
`run_pretraining.py` and `model/modeling.py`), a NumPy forward pass of the
discriminator, the generator and both heads that reads it by those names,
and kner's ELECTRA loader reading the discriminator back bit-identical."""

import json

import numpy as np
import pytest
from google_fixtures import (
    as_float64,
    assert_close_on_tokens,
    gelu_erf,
    layer_norm,
    make_inputs,
    read_checkpoint,
    run_backbone,
    write_vocab,
)
from test_electra import SMALL, reference_forward

from kner.backbones import electra_heads
from kner.backbones.bert_heads import assign_head_weights
from kner.backbones.electra import weight_table
from kner.backbones.tf1_checkpoint import read_variables
from kner.checkpoint import backbone_from_config, load_backbone
from kner.models.pretraining import ReplacedTokenDetectionModel, dummy_features

# HFL's config/small_discriminator_config.json (the chinese-electra-small release).
HFL_SMALL = {
    "embedding_size": 128,
    "hidden_act": "gelu",
    "hidden_size": 256,
    "intermediate_size": 1024,
    "max_position_embeddings": 512,
    "model_type": "electra",
    "num_attention_heads": 4,
    "num_hidden_layers": 12,
    "type_vocab_size": 2,
    "vocab_size": 21128,
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "initializer_range": 0.02,
}
# HFL's config/small_generator_config.json: what generator_hidden_size 0.25 must give.
HFL_SMALL_GENERATOR = {"embedding_size": 128, "hidden_size": 64, "num_attention_heads": 1, "intermediate_size": 256}
# google-research/electra, model_size "small" (training_utils.get_bert_config, configure_pretraining.py):
# hidden 256, 12 layers, heads 256 // 64, FFN 4 x 256, embedding_size 128, the English vocab of 30,522.
GOOGLE_SMALL = dict(HFL_SMALL, vocab_size=30522)


def encoder_names(scope: str, layers: int, width: int, ffn: int) -> dict[str, list[int]]:
    """`modeling.py` `transformer_model` under `scope/encoder`."""
    dense = {
        "attention/self/query": (width, width),
        "attention/self/key": (width, width),
        "attention/self/value": (width, width),
        "attention/output/dense": (width, width),
        "intermediate/dense": (width, ffn),
        "output/dense": (ffn, width),
    }
    names = {}
    for n in range(layers):
        layer = f"{scope}/encoder/layer_{n}"
        for part, (fan_in, fan_out) in dense.items():
            names[f"{layer}/{part}/kernel"] = [fan_in, fan_out]
            names[f"{layer}/{part}/bias"] = [fan_out]
        for norm in ("attention/output/LayerNorm", "output/LayerNorm"):
            names[f"{layer}/{norm}/gamma"] = [width]
            names[f"{layer}/{norm}/beta"] = [width]
    return names


def published_layout(config: dict, generator_hidden: int, generator_ffn: int) -> dict[str, list[int]]:
    """Every model variable of an ELECTRA pretraining checkpoint
    (google-research/electra `run_pretraining.py`: `build_transformer` for the
    discriminator in scope `electra` and the generator in scope `generator`,
    one shared `electra/embeddings`; `get_token_logits` in
    `generator_predictions`; `_get_discriminator_output` in
    `discriminator_predictions`), without optimizer slots and `global_step`."""
    vocab, embedding, hidden = config["vocab_size"], config["embedding_size"], config["hidden_size"]
    layers = config["num_hidden_layers"]
    names = {
        "electra/embeddings/word_embeddings": [vocab, embedding],
        "electra/embeddings/position_embeddings": [config["max_position_embeddings"], embedding],
        "electra/embeddings/token_type_embeddings": [config["type_vocab_size"], embedding],
        "electra/embeddings/LayerNorm/gamma": [embedding],
        "electra/embeddings/LayerNorm/beta": [embedding],
        **encoder_names("electra", layers, hidden, config["intermediate_size"]),
        **encoder_names("generator", layers, generator_hidden, generator_ffn),
        "generator_predictions/dense/kernel": [generator_hidden, embedding],
        "generator_predictions/dense/bias": [embedding],
        "generator_predictions/LayerNorm/gamma": [embedding],
        "generator_predictions/LayerNorm/beta": [embedding],
        "generator_predictions/output_bias": [vocab],
        "discriminator_predictions/dense/kernel": [hidden, hidden],
        "discriminator_predictions/dense/bias": [hidden],
        "discriminator_predictions/dense_1/kernel": [hidden, 1],
        "discriminator_predictions/dense_1/bias": [1],
    }
    if embedding != hidden:
        names["electra/embeddings_project/kernel"] = [embedding, hidden]
        names["electra/embeddings_project/bias"] = [hidden]
    if embedding != generator_hidden:
        names["generator/embeddings_project/kernel"] = [embedding, generator_hidden]
        names["generator/embeddings_project/bias"] = [generator_hidden]
    return names


def pretraining_model(config: dict, generator_hidden_size: float = 0.25, seed: int | None = None):
    model = ReplacedTokenDetectionModel(backbone_from_config(config), generator_hidden_size)
    model(dummy_features())
    if seed is not None:
        randomize(model, seed)
    return model


def randomize(model: ReplacedTokenDetectionModel, seed: int) -> None:
    """Weights away from the initialisers' near-linear regime (as
    google_fixtures.RandomWeights), so the forward passes test something."""
    rng = np.random.default_rng(seed)
    for weight in all_weights(model):
        shape, leaf = weight.shape, weight.name.rsplit("/", 1)[-1]
        if leaf == "kernel":
            value = rng.normal(0, 1 / np.sqrt(shape[0]), shape)
        elif leaf == "gamma":
            value = rng.normal(1.0, 0.5, shape)
        elif leaf in ("beta", "bias", "output_bias"):
            value = rng.normal(0, 0.5, shape)
        else:  # embedding tables
            value = rng.normal(size=shape)
        weight.variable.assign(value.reshape(weight.variable.shape).astype("float32"))


def all_weights(model: ReplacedTokenDetectionModel):
    return [*weight_table(model.backbone), *(w for head in model.heads().values() for w in head)]


@pytest.mark.parametrize(
    ("config", "fraction", "generator"),
    [(HFL_SMALL, 0.25, HFL_SMALL_GENERATOR), (GOOGLE_SMALL, 1.0, {"hidden_size": 256, "intermediate_size": 1024})],
    ids=["hfl-chinese-electra-small", "google-electra-small-generator-1.0"],
)
def test_written_names_and_shapes_equal_the_published_layout(tmp_path, config, fraction, generator):
    model = pretraining_model(config, fraction)
    write_vocab(tmp_path / "vocab.txt", config["vocab_size"])
    prefix, _ = model.save_checkpoint(tmp_path / "out", tmp_path / "vocab.txt")
    written = {name: list(shape) for name, (shape, _) in read_variables(prefix).items()}
    assert written == published_layout(config, generator["hidden_size"], generator["intermediate_size"])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "discriminator.json",
        "electra_model.data-00000-of-00001",
        "electra_model.index",
        "generator.json",
        "vocab.txt",
    ]
    discriminator = json.loads((tmp_path / "out" / "discriminator.json").read_text())
    assert {key: discriminator[key] for key in config} == config
    written_generator = json.loads((tmp_path / "out" / "generator.json").read_text())
    assert {key: written_generator[key] for key in generator} == generator
    assert written_generator["num_hidden_layers"] == config["num_hidden_layers"]
    assert written_generator["architectures"] == ["ElectraForMaskedLM"]


def test_generator_shape_is_get_generator_config():
    assert electra_heads.generator_shape(256, 0.25) == {
        "hidden_size": 64,
        "num_attention_heads": 1,
        "intermediate_size": 256,
    }  # HFL's chinese-electra-small generator
    assert electra_heads.generator_shape(768, 0.25)["num_attention_heads"] == 3  # HFL's base: 192 hidden
    assert electra_heads.generator_shape(768, 1 / 3) == {
        "hidden_size": 256,
        "num_attention_heads": 4,
        "intermediate_size": 1024,
    }  # the paper's base
    with pytest.raises(ValueError, match="leaves no generator hidden units"):
        electra_heads.generator_shape(128, 0.001)


def test_shared_embeddings_are_one_set_of_variables_written_once():
    model = pretraining_model(SMALL)
    discriminator, generator = model.backbone, model.generator
    for part in ("token_embedding", "position_embedding", "segment_embedding", "embeddings_layer_norm"):
        assert getattr(generator, part) is getattr(discriminator, part)
    assert generator.embeddings_projection is not discriminator.embeddings_projection
    ids = [id(v) for v in model.weights]
    assert len(ids) == len(set(ids))
    embedding_variables = [v for v in model.weights if v.path.endswith(("token_embedding/embeddings",))]
    assert len(embedding_variables) == 1
    names = [w.name for w in all_weights(model)]
    assert len(names) == len(set(names)) and not any(n.startswith("generator/embeddings/") for n in names)


def generator_forward(discriminator_config, generator_config, w, token_ids, segment_ids, mask, positions):
    """`run_pretraining.py` generator: `modeling.py` with scope `generator`
    on the shared `electra/embeddings`, then `get_token_logits` at `positions`."""
    renamed = dict(w)
    for name, value in w.items():
        if name.startswith("generator/"):
            renamed["electra/" + name[len("generator/") :]] = value
    config = {**discriminator_config, **generator_config}
    hidden, _ = reference_forward(config, renamed, token_ids, segment_ids, mask)
    gathered = np.take_along_axis(hidden, positions[..., None], axis=1)
    x = gelu_erf(gathered @ w["generator_predictions/dense/kernel"] + w["generator_predictions/dense/bias"])
    x = layer_norm(x, w["generator_predictions/LayerNorm/gamma"], w["generator_predictions/LayerNorm/beta"])
    return x @ w["electra/embeddings/word_embeddings"].T + w["generator_predictions/output_bias"]


def discriminator_logits(config, w, token_ids, segment_ids, mask):
    """`modeling.py` with scope `electra`, then `_get_discriminator_output`."""
    hidden, _ = reference_forward(config, w, token_ids, segment_ids, mask)
    x = gelu_erf(hidden @ w["discriminator_predictions/dense/kernel"] + w["discriminator_predictions/dense/bias"])
    return (x @ w["discriminator_predictions/dense_1/kernel"] + w["discriminator_predictions/dense_1/bias"])[..., 0]


def test_written_checkpoint_runs_in_numpy_like_the_model_and_loads_back_bit_identical(tmp_path):
    model = pretraining_model(SMALL, seed=5)
    write_vocab(tmp_path / "vocab.txt", SMALL["vocab_size"])
    prefix, _ = model.save_checkpoint(tmp_path / "out", tmp_path / "vocab.txt")
    w = as_float64(read_checkpoint(prefix))
    generator_config = json.loads((tmp_path / "out" / "generator.json").read_text())

    token_ids, segment_ids, mask = make_inputs(SMALL, length=14, seed=8)
    positions = np.array([[2, 5, 9], [1, 3, 6]], np.int32)  # row 2: before its padding starts at 7
    features = {
        "token_ids": token_ids,
        "segment_ids": segment_ids,
        "padding_mask": mask.astype(bool),
        "masked_lm_positions": positions,
        "masked_lm_ids": np.take_along_axis(token_ids, positions, axis=1),
        "masked_lm_weights": np.ones(positions.shape, np.float32),
        "example_seed": np.array([[4, 0], [4, 1]], np.int64),
    }
    outputs = {name: value.numpy() for name, value in model(features).items()}

    # The discriminator alone (the backbone kner.train fine-tunes) to 1e-5.
    sequence, _ = run_backbone(model.backbone, (token_ids, segment_ids, mask))
    assert_close_on_tokens(sequence, reference_forward(SMALL, w, token_ids, segment_ids, mask)[0], mask)
    # The generator and its head, from the generator/* and generator_predictions/* variables.
    want = generator_forward(SMALL, generator_config, w, token_ids, segment_ids, mask, positions)
    np.testing.assert_allclose(outputs["masked_lm_logits"], want, rtol=1e-5, atol=1e-4)
    # The discriminator head on the corrupted text (the samples at the positions).
    corrupted = token_ids.copy()
    np.put_along_axis(corrupted, positions, outputs["sampled_ids"], axis=1)
    want = discriminator_logits(SMALL, w, corrupted, segment_ids, mask)
    real = mask.astype(bool)
    np.testing.assert_allclose(outputs["disc_logits"][real], want[real], rtol=0, atol=1e-5)

    # kner's ELECTRA loader: the discriminator's variables bit-identical, the same outputs.
    reloaded = load_backbone(tmp_path / "out")
    for got, expected in zip(weight_table(reloaded), weight_table(model.backbone)):
        assert got.name == expected.name
        np.testing.assert_array_equal(got.variable.numpy(), expected.variable.numpy())
    inputs = (token_ids, segment_ids, mask)
    for got, expected in zip(run_backbone(reloaded, inputs), run_backbone(model.backbone, inputs)):
        np.testing.assert_array_equal(got, expected)


def test_continued_pretraining_reads_both_heads_back_bit_identical(tmp_path):
    model = pretraining_model(SMALL, seed=6)
    write_vocab(tmp_path / "vocab.txt", SMALL["vocab_size"])
    prefix, _ = model.save_checkpoint(tmp_path / "out", tmp_path / "vocab.txt")
    assert electra_heads.heads_in(read_variables(prefix)) == ["generator", "discriminator_predictions"]
    fresh = ReplacedTokenDetectionModel(load_backbone(tmp_path / "out"), 0.25)
    fresh(dummy_features())
    for weights in fresh.heads().values():
        assign_head_weights(prefix, weights)
    for got, expected in zip(all_weights(fresh), all_weights(model)):
        assert got.name == expected.name
        np.testing.assert_array_equal(got.variable.numpy(), expected.variable.numpy())
