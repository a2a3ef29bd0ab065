from pathlib import Path

import pytest
from shared_data import shared_file
from tagger_dirs import cached_export, toy_dir


@pytest.fixture(scope="session")
def bert_vocab_path() -> Path:
    return shared_file("vocab/bert-base-chinese-vocab.txt")


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """A toy model_dir trained to tag names and places (tests/tagger_dirs.py)."""
    return toy_dir(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def export_dir(model_dir, tmp_path_factory) -> Path:
    """That model exported for TF Serving."""
    return cached_export(tmp_path_factory.getbasetemp(), "toy_export", model_dir)


@pytest.fixture(scope="session")
def in_process(model_dir):
    """A `kner.Predictor` built in-process from that model_dir."""
    from kner.serving.predictor import Predictor

    return Predictor.from_dir(model_dir)
