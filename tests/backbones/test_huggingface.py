import json

import numpy as np
import pytest
from google_fixtures import make_inputs, run_backbone, write_vocab

from kner.backbones import bert
from kner.backbones.huggingface import (
    EXTRA_WEIGHTS,
    HF_WEIGHTS,
    has_masked_lm_head,
    huggingface_name,
    read_masked_lm_head,
    save_token_classifier,
)
from kner.backbones.weight_table import arrays
from kner.checkpoint import backbone_from_config, load_backbone
from kner.data.tokenizer import read_vocab
from kner.errors import InputError

safetensors_numpy = pytest.importorskip("safetensors.numpy")

CONFIG = {
    "vocab_size": 60,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 24,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
}
TAGS = ["O", "B-name", "I-name", "S-name"]


@pytest.fixture(scope="module")
def backbone():
    """A backbone with every weight random (no all-ones LayerNorm gains)."""
    model = backbone_from_config(CONFIG)
    rng = np.random.default_rng(3)
    for weight in bert.weight_table(model):
        weight.variable.assign(rng.normal(0, 0.2, weight.variable.shape).astype("float32"))
    return model


def test_huggingface_names_are_bert_model_names():
    assert huggingface_name("bert/encoder/layer_11/attention/self/query/kernel") == (
        "bert.encoder.layer.11.attention.self.query.weight"
    )
    assert huggingface_name("bert/encoder/layer_0/output/LayerNorm/gamma") == (
        "bert.encoder.layer.0.output.LayerNorm.weight"
    )
    assert huggingface_name("bert/embeddings/LayerNorm/beta") == "bert.embeddings.LayerNorm.bias"
    assert huggingface_name("bert/embeddings/word_embeddings") == "bert.embeddings.word_embeddings.weight"
    assert huggingface_name("bert/pooler/dense/bias") == "bert.pooler.dense.bias"


def test_token_classifier_round_trips_through_the_huggingface_loader(backbone, tmp_path):
    rng = np.random.default_rng(4)
    kernel = rng.normal(size=(CONFIG["hidden_size"], len(TAGS))).astype("float32")
    bias = rng.normal(size=len(TAGS)).astype("float32")
    transitions = rng.normal(size=(len(TAGS), len(TAGS))).astype("float32")
    write_vocab(tmp_path / "vocab.txt", CONFIG["vocab_size"])
    vocabulary = read_vocab(tmp_path / "vocab.txt")
    directory = save_token_classifier(
        backbone,
        tmp_path / "hf",
        vocabulary,
        TAGS,
        (kernel, bias),
        extra_weights={"crf.transitions": transitions},
        extra_config={"kner_tag_scheme": "bios"},
    )

    loaded = load_backbone(directory)
    want = arrays(bert.weight_table(backbone))
    got = arrays(bert.weight_table(loaded))
    assert got.keys() == want.keys()
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    inputs = make_inputs(CONFIG, 10, seed=5)
    for out_loaded, out_original in zip(run_backbone(loaded, inputs), run_backbone(backbone, inputs)):
        np.testing.assert_array_equal(out_loaded, out_original)

    tensors = safetensors_numpy.load_file(directory / "model.safetensors")
    # BertForTokenClassification's state dict (5 embedding tensors, 16 per layer, classifier) plus the pooler.
    assert len(tensors) == 5 + 16 * CONFIG["num_hidden_layers"] + 2 + 2
    np.testing.assert_array_equal(tensors["classifier.weight"], kernel.T)
    np.testing.assert_array_equal(tensors["classifier.bias"], bias)
    query = backbone.transformer_layers[1]._self_attention_layer.query_dense.kernel.numpy()
    np.testing.assert_array_equal(
        tensors["bert.encoder.layer.1.attention.self.query.weight"], query.reshape(CONFIG["hidden_size"], -1).T
    )
    assert all(value.dtype == np.float32 for value in tensors.values())
    extra = safetensors_numpy.load_file(directory / EXTRA_WEIGHTS)
    np.testing.assert_array_equal(extra["crf.transitions"], transitions)
    config = json.loads((directory / "config.json").read_text())
    assert config["hidden_act"] == "gelu_pytorch_tanh"
    assert config["architectures"] == ["BertForTokenClassification"]
    assert config["id2label"] == {str(i): tag for i, tag in enumerate(TAGS)}
    assert config["kner_tag_scheme"] == "bios"
    assert read_vocab(directory / "vocab.txt") == vocabulary


def test_token_classifier_refuses_a_classifier_of_another_shape(backbone, tmp_path):
    kernel = np.zeros((CONFIG["hidden_size"], 3), np.float32)
    with pytest.raises(ValueError, match="do not fit hidden size 32 and 4 tags"):
        save_token_classifier(backbone, tmp_path / "hf", ["[PAD]"], TAGS, (kernel, np.zeros(3, np.float32)))
    assert not (tmp_path / "hf").exists()


def test_the_masked_lm_head_reads_under_googles_names_from_one_file_or_shards(tmp_path):
    rng = np.random.default_rng(5)
    width, vocab = CONFIG["hidden_size"], CONFIG["vocab_size"]
    head = {
        "cls.predictions.transform.dense.weight": rng.normal(size=(width, width)),  # PyTorch's [out, in]
        "cls.predictions.transform.dense.bias": rng.normal(size=width),
        "cls.predictions.transform.LayerNorm.gamma": rng.normal(size=width),  # an older conversion's names
        "cls.predictions.transform.LayerNorm.beta": rng.normal(size=width),
        "cls.predictions.bias": rng.normal(size=vocab),
    }
    head = {name: value.astype("float32") for name, value in head.items()}
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    single.mkdir()
    sharded.mkdir()
    safetensors_numpy.save_file(
        {**head, "bert.pooler.dense.bias": head["cls.predictions.bias"]}, str(single / HF_WEIGHTS[0])
    )
    names = sorted(head)
    safetensors_numpy.save_file({n: head[n] for n in names[:2]}, str(sharded / "model-1.safetensors"))
    safetensors_numpy.save_file({n: head[n] for n in names[2:]}, str(sharded / "model-2.safetensors"))
    weight_map = {n: "model-1.safetensors" if i < 2 else "model-2.safetensors" for i, n in enumerate(names)}
    (sharded / HF_WEIGHTS[1]).write_text(json.dumps({"weight_map": weight_map}))
    for directory in (single, sharded):
        assert has_masked_lm_head(directory)
        got = read_masked_lm_head(directory)
        np.testing.assert_array_equal(
            got["cls/predictions/transform/dense/kernel"], head["cls.predictions.transform.dense.weight"].T
        )
        np.testing.assert_array_equal(
            got["cls/predictions/transform/LayerNorm/gamma"], head["cls.predictions.transform.LayerNorm.gamma"]
        )
        np.testing.assert_array_equal(got["cls/predictions/output_bias"], head["cls.predictions.bias"])
    # An encoder-only directory has no head; a partial head names what it lacks.
    encoder_only = tmp_path / "encoder_only"
    encoder_only.mkdir()
    safetensors_numpy.save_file(
        {"bert.pooler.dense.bias": head["cls.predictions.bias"]}, str(encoder_only / HF_WEIGHTS[0])
    )
    assert not has_masked_lm_head(encoder_only)
    del head["cls.predictions.bias"]
    safetensors_numpy.save_file(head, str(single / HF_WEIGHTS[0]))
    with pytest.raises(InputError, match="masked-LM head without cls.predictions.bias"):
        read_masked_lm_head(single)
