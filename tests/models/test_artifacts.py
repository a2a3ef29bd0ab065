import json

import h5py
import pytest
from shared_data import shared_file
from tagger_dirs import build_model_dir, english_model_dir

from kner.data.units import WordUnits
from kner.data.wordpiece import WordPieceTokenizer
from kner.errors import InputError
from kner.models.artifacts import SETTINGS, WEIGHTS, label_units, load_tagger


@pytest.mark.parametrize("head, decoding", [("softmax", "argmax"), ("softmax", "viterbi"), ("crf", "viterbi")])
def test_the_decoding_is_saved_with_the_model(tmp_path, head, decoding):
    model_dir = build_model_dir(tmp_path / "m", head=head, decoding=decoding)
    assert json.loads((model_dir / SETTINGS).read_text())["decode"] == decoding
    model, _, settings = load_tagger(model_dir)
    assert (model.head.name, model.head.decoding, settings["decode"]) == (head, decoding, decoding)


def test_a_model_dir_without_decode_keeps_its_argmax(tmp_path):
    """A softmax model_dir written before `decode` was saved decoded by argmax."""
    model_dir = build_model_dir(tmp_path / "m", head="softmax", decoding="argmax")
    settings = json.loads((model_dir / SETTINGS).read_text())
    del settings["decode"]
    (model_dir / SETTINGS).write_text(json.dumps(settings))
    assert load_tagger(model_dir)[0].head.decoding == "argmax"


def test_head_weights_keep_the_flat_layout_of_earlier_model_dirs(tmp_path):
    """The head's layers sit at the top of the weights file, as before heads
    were objects: model_dirs written then still load."""
    model_dir = build_model_dir(tmp_path / "m", head="crf")
    with h5py.File(model_dir / WEIGHTS) as weights:
        assert {"classifier", "crf"} <= set(weights)


def test_an_unknown_head_in_settings_is_one_line(tmp_path):
    model_dir = build_model_dir(tmp_path / "m", head="crf")
    settings = json.loads((model_dir / SETTINGS).read_text())
    (model_dir / SETTINGS).write_text(json.dumps({**settings, "head": "lstm"}))
    with pytest.raises(InputError, match="settings.json: head must be one of crf, softmax"):
        load_tagger(model_dir)


@pytest.mark.parametrize("lowercase", [False, True])
def test_the_model_dir_keeps_how_text_was_tokenized(tmp_path, lowercase):
    """kner.predict and kner.export take no tokenizer flags: the model_dir's
    settings.json rebuilds the training run's tokenizer, casing and units."""
    model, model_dir = english_model_dir(tmp_path / "m", shared_file("vocab/bert-base-cased-vocab.txt"))
    settings = json.loads((model_dir / SETTINGS).read_text())
    (model_dir / SETTINGS).write_text(json.dumps({**settings, "do_lower_case": lowercase}))
    model.save_weights(str(model_dir / WEIGHTS))
    _, tokenizer, settings = load_tagger(model_dir)
    assert (type(tokenizer), tokenizer.lowercase) == (WordPieceTokenizer, lowercase)
    assert isinstance(label_units(settings), WordUnits)
    assert (tokenizer.encode("Zürich") == tokenizer.encode("zurich")) == lowercase  # lower-cased, accents stripped
