import json

import pytest
from tagger_dirs import build_model_dir

from kner.models.artifacts import SETTINGS, load_tagger


@pytest.mark.parametrize("head, decoding", [("softmax", "argmax"), ("softmax", "viterbi"), ("crf", "viterbi")])
def test_the_decoding_is_saved_with_the_model(tmp_path, head, decoding):
    model_dir = build_model_dir(tmp_path / "m", head=head, decoding=decoding)
    assert json.loads((model_dir / SETTINGS).read_text())["decode"] == decoding
    model, _, settings = load_tagger(model_dir)
    assert (model.head, model.decoding, settings["decode"]) == (head, decoding, decoding)


def test_a_model_dir_without_decode_keeps_its_argmax(tmp_path):
    """A softmax model_dir written before `decode` was saved decoded by argmax."""
    model_dir = build_model_dir(tmp_path / "m", head="softmax", decoding="argmax")
    settings = json.loads((model_dir / SETTINGS).read_text())
    del settings["decode"]
    (model_dir / SETTINGS).write_text(json.dumps(settings))
    assert load_tagger(model_dir)[0].decoding == "argmax"
