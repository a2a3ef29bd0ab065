"""keras-hub preset directories (`save_to_preset` output) load, feed the
tagger, rebuild from a model_dir config and write back."""

import json

import keras
import keras_hub
import numpy as np
import pytest
from google_fixtures import make_inputs, run_backbone, write_vocab

from kner.checkpoint import (
    backbone_config,
    backbone_from_config,
    load_backbone,
    locate_checkpoint,
    save_google_checkpoint,
)
from kner.data.tokenizer import read_vocab
from kner.errors import InputError

SHAPE = {"vocabulary_size": 60, "num_layers": 2, "num_heads": 2, "hidden_dim": 16, "intermediate_dim": 32}


def write_preset(directory, backbone, vocab_size):
    """What keras-hub writes for a backbone and its tokenizer."""
    backbone.save_to_preset(str(directory))
    write_vocab(directory.parent / "vocab.txt", vocab_size)
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=str(directory.parent / "vocab.txt"))
    tokenizer.save_to_preset(str(directory))
    return directory


@pytest.fixture(scope="module")
def bert_preset(tmp_path_factory):
    keras.utils.set_random_seed(1)
    backbone = keras_hub.models.BertBackbone(**SHAPE, max_sequence_length=32)
    return write_preset(tmp_path_factory.mktemp("preset") / "bert_zh", backbone, 60), backbone


def test_loads_a_bert_preset_with_its_vocab(bert_preset):
    directory, original = bert_preset
    files = locate_checkpoint(directory)
    assert (files.format, files.family) == ("keras_hub", "keras_hub")
    assert files.vocab == directory / "assets" / "tokenizer" / "vocabulary.txt"
    assert len(read_vocab(files.vocab)) == 60
    backbone = load_backbone(directory, max_seq_length=32)
    assert isinstance(backbone, keras_hub.models.BertBackbone)
    inputs = make_inputs({"vocab_size": 60, "type_vocab_size": 2}, length=8)
    for got, want in zip(run_backbone(backbone, inputs), run_backbone(original, inputs)):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(InputError, match="max_seq_length 33 exceeds the checkpoint's max_position_embeddings 32"):
        load_backbone(directory, max_seq_length=33)


def test_bert_preset_writes_back_as_a_google_checkpoint(bert_preset, tmp_path):
    directory, original = bert_preset
    save_google_checkpoint(
        load_backbone(directory), tmp_path / "google", vocab_file=directory / "assets/tokenizer/vocabulary.txt"
    )
    reloaded = load_backbone(tmp_path / "google")
    inputs = make_inputs({"vocab_size": 60, "type_vocab_size": 2}, length=8, seed=2)
    for got, want in zip(run_backbone(reloaded, inputs), run_backbone(original, inputs)):
        np.testing.assert_array_equal(got, want)


def test_electra_preset_rebuilds_from_model_dir_config(tmp_path):
    backbone = keras_hub.models.ElectraBackbone(
        vocab_size=60, num_layers=2, num_heads=2, hidden_dim=16, embedding_dim=8, intermediate_dim=32
    )
    directory = write_preset(tmp_path / "electra", backbone, 60)
    loaded = load_backbone(directory)
    assert isinstance(loaded, keras_hub.models.ElectraBackbone)
    config = json.loads(json.dumps(backbone_config(loaded)))
    assert config["kner_layout"] == "keras_hub"
    rebuilt = backbone_from_config(config)
    assert type(rebuilt) is type(loaded)
    assert [w.shape for w in rebuilt.weights] == [w.shape for w in loaded.weights]
    with pytest.raises(ValueError, match="ElectraBackbone has no TF1 checkpoint layout; use its save_to_preset"):
        save_google_checkpoint(loaded, tmp_path / "out")


def test_preset_errors(bert_preset, tmp_path):
    distil = keras_hub.models.DistilBertBackbone(**SHAPE, max_sequence_length=32)
    directory = write_preset(tmp_path / "distil", distil, 60)
    with pytest.raises(
        InputError, match=r"DistilBertBackbone takes \['padding_mask', 'token_ids'\]; kner's tagger needs"
    ):
        load_backbone(directory)
    wrong_vocab = write_preset(tmp_path / "wrong" / "bert", bert_preset[1], 59)
    with pytest.raises(InputError, match="vocabulary.txt: has 59 entries but config.json says vocab_size=60"):
        load_backbone(wrong_vocab)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"class_name": "NoSuchBackbone", "config": {}}')
    (broken / "model.weights.h5").write_bytes(b"")
    with pytest.raises(InputError, match="config.json: keras-hub cannot load this preset"):
        load_backbone(broken)
