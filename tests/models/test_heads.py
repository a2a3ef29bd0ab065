"""The head registry and what every head shares with the tagger."""

import keras
import pytest
from tagger_dirs import TYPES, tiny_config, toy_vocabulary

from kner.checkpoint import backbone_from_config
from kner.data.labels import LabelVocab
from kner.models import artifacts
from kner.models.heads import HEADS, Head, build_head, decodings, head_class
from kner.models.tagger import Tagger

LABELS = LabelVocab.from_types(TYPES, "bios")


def test_the_registry_names_every_head_once():
    assert set(HEADS) >= {"softmax", "crf"}
    for name, cls in HEADS.items():
        assert issubclass(cls, Head) and cls.name == name and cls.decodings
    assert decodings()[:2] == ["viterbi", "argmax"] and len(decodings()) == len(set(decodings()))
    with pytest.raises(ValueError, match="head must be one of"):
        head_class("lstm")


@pytest.mark.parametrize("name", sorted(HEADS))
def test_settings_rebuild_the_same_head(name):
    head = build_head(name, LABELS, head_size=8, decode_threshold=0.5)
    again = head_class(name).from_settings(LABELS, {"head": name, **head.settings()})
    assert again.settings() == head.settings() and again.decoding == head.decodings[0]


def test_a_head_refuses_a_decoding_it_does_not_have():
    with pytest.raises(ValueError, match="--decode=argmax does not apply to the crf head"):
        build_head("crf", LABELS, "argmax")


@pytest.mark.parametrize("name", sorted(HEADS))
def test_the_tagger_trains_each_head_layer_once_under_its_name(name):
    keras.utils.set_random_seed(0)
    model = Tagger(backbone_from_config(tiny_config(len(toy_vocabulary()))), LABELS, head=name)
    model(artifacts.dummy_batch())
    for layer_name, layer in model.head.layers.items():
        assert getattr(model, layer_name) is layer
    paths = [v.path for v in model.trainable_variables]
    assert len(paths) == len(set(paths))
    head_variables = {v.path for layer in model.head_layers() for v in layer.trainable_variables}
    assert head_variables and head_variables < set(paths)
    assert artifacts.tagger_settings(model, 64) == {
        "head": name,
        "dropout": 0.1,
        "max_seq_length": 64,
        "tokenizer": "char",
        "do_lower_case": True,
        "label_units": "tokens",
        **model.head.settings(),
    }
