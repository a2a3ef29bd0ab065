import json
import logging
import shutil

import pytest
from shared_data import shared_file

from kner.backbones.casing import checkpoint_casing, resolve_lowercase


@pytest.mark.parametrize(
    "name, lowercase",
    [
        ("uncased_L-12_H-768_A-12", True),
        ("cased_L-12_H-768_A-12", False),
        ("cased_L-24_H-1024_A-16", False),
        ("multi_cased_L-12_H-768_A-12", False),
        ("multilingual_L-12_H-768_A-12", True),
        ("chinese_L-12_H-768_A-12", True),
        ("wwm_uncased_L-24_H-1024_A-16", True),
        ("wwm_cased_L-24_H-1024_A-16", False),
        ("uncased_L-4_H-256_A-4", True),
    ],
)
def test_google_folder_names(tmp_path, name, lowercase):
    directory = tmp_path / name
    directory.mkdir()
    assert checkpoint_casing(directory).lowercase is lowercase
    # A TF1 prefix inside the folder, as Google's validate_case_matches_checkpoint takes it.
    casing = checkpoint_casing(directory / "bert_model.ckpt")
    assert (casing.lowercase, casing.evidence) == (lowercase, f"its folder name {name}")


@pytest.mark.parametrize("value", [False, True])
def test_tokenizer_configs_come_first(tmp_path, value):
    hf = tmp_path / "uncased_L-12_H-768_A-12"  # the name says uncased; the config wins
    hf.mkdir()
    (hf / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": value, "model_max_length": 512}))
    assert checkpoint_casing(hf).lowercase is value
    preset = tmp_path / "bert_base_en"
    preset.mkdir()
    (preset / "tokenizer.json").write_text(json.dumps({"class_name": "BertTokenizer", "config": {"lowercase": value}}))
    assert checkpoint_casing(preset).lowercase is value


@pytest.mark.parametrize("vocab, lowercase", [("cased", False), ("uncased", True), ("chinese", True)])
def test_the_vocab_tells_last(tmp_path, vocab, lowercase):
    directory = tmp_path / "my_english_model"
    directory.mkdir()
    (directory / "tokenizer_config.json").write_text("{}")  # says nothing about case
    shutil.copy(shared_file(f"vocab/bert-base-{vocab}-vocab.txt"), directory / "vocab.txt")
    casing = checkpoint_casing(directory)
    assert casing.lowercase is lowercase and "vocab pieces have capitals" in casing.evidence


def test_nothing_tells(tmp_path):
    assert checkpoint_casing(tmp_path) is None and checkpoint_casing(None) is None
    assert resolve_lowercase(None, tmp_path) is True
    assert resolve_lowercase(False, None) is False


def test_a_given_flag_wins_with_one_warning_line(tmp_path, caplog):
    directory = tmp_path / "cased_L-12_H-768_A-12"
    directory.mkdir()
    assert resolve_lowercase(None, directory) is False
    with caplog.at_level(logging.WARNING):
        assert resolve_lowercase(False, directory) is False
        assert not caplog.records
        assert resolve_lowercase(True, directory) is True
    (record,) = caplog.records
    assert "\n" not in record.getMessage()
    assert record.getMessage() == (
        f"--do_lower_case=true, but {directory} looks cased (its folder name cased_L-12_H-768_A-12): "
        "fine-tuning will not see text as it was pretrained"
    )
