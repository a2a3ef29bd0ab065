from pathlib import Path

import pytest
from shared_data import shared_file


@pytest.fixture(scope="session")
def bert_vocab_path() -> Path:
    return shared_file("vocab/bert-base-chinese-vocab.txt")
