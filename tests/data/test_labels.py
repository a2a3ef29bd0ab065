import json

import pytest

from kner.data.corpus import Sentence
from kner.data.labels import LabelVocab
from kner.data.spans import Span
from kner.errors import InputError


@pytest.mark.parametrize(
    "scheme, tags",
    [
        ("bio", ["O", "B-address", "I-address", "B-name", "I-name"]),
        (
            "bios",
            ["O", "B-address", "I-address", "S-address", "B-name", "I-name", "S-name"],
        ),
        (
            "bioes",
            ["O"] + [f"{p}-{t}" for t in ("address", "name") for p in "BIES"],
        ),
        (
            "bmes",
            ["O"] + [f"{p}-{t}" for t in ("address", "name") for p in "BMES"],
        ),
    ],
)
def test_tag_order_is_stable(scheme, tags):
    vocab = LabelVocab.from_types(["name", "address", "name"], scheme)
    assert vocab.tags == tags
    assert vocab.types == ["address", "name"]
    assert len(vocab) == len(tags)
    assert [vocab.tag_to_id(tag) for tag in tags] == list(range(len(tags)))
    assert [vocab.id_to_tag(i) for i in range(len(tags))] == tags


def test_from_sentences_ignores_order_and_unlabelled():
    first = [
        Sentence("ab", [Span(0, 1, "name")]),
        Sentence("c", None),
        Sentence("de", [Span(1, 1, "game")]),
    ]
    assert LabelVocab.from_sentences(first, "bio") == LabelVocab.from_sentences(first[::-1], "bio")
    assert LabelVocab.from_sentences(first, "bio").types == ["game", "name"]


def test_encode_decode():
    vocab = LabelVocab.from_types(["name"], "bioes")
    ids = vocab.encode([Span(0, 1, "name"), Span(3, 3, "name")], 4)
    assert [vocab.id_to_tag(i) for i in ids] == ["B-name", "E-name", "O", "S-name"]
    assert vocab.decode(ids) == ([Span(0, 1, "name"), Span(3, 3, "name")], 0)
    broken = [vocab.tag_to_id(tag) for tag in ["O", "I-name", "E-name"]]
    assert vocab.decode(broken) == ([Span(1, 2, "name")], 1)
    with pytest.raises(ValueError, match="continues no entity"):
        vocab.decode(broken, strict=True)
    with pytest.raises(KeyError, match="S-game"):
        vocab.encode([Span(0, 0, "game"), Span(1, 2, "game")], 3)


def test_save_load_round_trip(tmp_path):
    vocab = LabelVocab(["O", "B-z", "I-z", "B-a", "I-a"], "bio")
    vocab.save(tmp_path / "labels.json")
    content = json.loads((tmp_path / "labels.json").read_text())
    assert content == {"scheme": "bio", "tags": vocab.tags}
    loaded = LabelVocab.load(tmp_path / "labels.json")
    assert loaded == vocab
    assert loaded.tags[1] == "B-z"
    assert loaded != LabelVocab.from_types(["a", "z"], "bio")


@pytest.mark.parametrize(
    "tags, scheme, message",
    [
        (["B-a", "O"], "bio", "first tag must be 'O'"),
        (["O", "B-a", "B-a"], "bio", "must not repeat"),
        (["O", "E-a"], "bio", "unknown tag prefix"),
        (["O"], "iob", "unknown tag scheme"),
    ],
)
def test_invalid_vocab(tags, scheme, message):
    with pytest.raises(ValueError, match=message):
        LabelVocab(tags, scheme)


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"scheme": "bio"}', "not a label vocabulary"),
        ('{"scheme": "bio", "tags": ["O", "M-a"]}', "unknown tag prefix"),
        ("[1, 2", "not a label vocabulary"),
    ],
)
def test_load_bad_file(tmp_path, content, message):
    path = tmp_path / "labels.json"
    path.write_text(content)
    with pytest.raises(InputError, match=message) as caught:
        LabelVocab.load(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_load_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        LabelVocab.load(tmp_path / "absent.json")
