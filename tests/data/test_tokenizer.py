import subprocess
import sys

import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from kner.data.tokenizer import SPECIAL_TOKENS, CharTokenizer, build_vocab, read_vocab, save_vocab
from kner.data.tokenizer_base import utf8_characters
from kner.errors import InputError

TOY_VOCAB = ["[PAD]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "上", "海", "a", "b", "1", "e", "！", "ａ"]


@pytest.fixture(scope="module")
def toy() -> CharTokenizer:
    return CharTokenizer(TOY_VOCAB)


@pytest.fixture(scope="module")
def bert(bert_vocab_path) -> CharTokenizer:
    return CharTokenizer(bert_vocab_path)


def tokens(tokenizer: CharTokenizer, text: str) -> list[str]:
    return [tokenizer.vocabulary[i] for i in tokenizer.encode(text)]


def test_one_token_per_character_and_normalisation(toy):
    # Upper case -> lower, full-width -> half-width, accents stripped,
    # whitespace -> [unused1], unknown/control/emoji -> [UNK]; none dropped.
    assert tokens(toy, "上海 A１é\u3000\t😀\x01？") == [
        "上", "海", "[unused1]", "a", "1", "e", "[unused1]", "[unused1]", "[UNK]", "[UNK]", "[UNK]",
    ]  # fmt: skip


def test_raw_character_wins_over_normalised_form(toy):
    assert tokens(toy, "！ａ") == ["！", "ａ"]


def test_bert_vocab_follows_bert_normalisation(bert):
    # BERT lower-cases first: "Ａ" -> "ａ", which the Chinese vocab has.
    assert tokens(bert, "Ａ上海Ｘ") == ["ａ", "上", "海", "ｘ"]
    assert bert.vocabulary_size == 21128


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=40), min_size=1, max_size=4))
def test_graph_equals_python_and_keeps_every_character(texts):
    tok = CharTokenizer(TOY_VOCAB)
    encoded = [t.encode("utf-8", errors="replace").decode("utf-8") for t in texts]
    ragged = tok(tf.constant([t.encode("utf-8", errors="replace") for t in texts]))
    assert ragged.to_list() == [tok.encode(t) for t in encoded]
    assert [len(row) for row in ragged.to_list()] == [len(t) for t in encoded]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=24) | st.text(max_size=24).map(str.encode), min_size=0, max_size=4))
def test_utf8_characters_equals_tensorflow_unicode_split(texts):
    """Any bytes (invalid UTF-8, emoji, control characters, empty texts,
    an empty batch): the characters `tf.strings.unicode_split` gives."""
    batch = tf.constant(texts, tf.string, shape=[len(texts)])
    expected = tf.strings.unicode_split(batch, "UTF-8", errors="replace")
    assert utf8_characters(batch).to_list() == expected.to_list()


def test_build_vocab_orders_by_frequency_and_keeps_specials():
    vocab = build_vocab(["海上上", "海 上", "b"], min_count=1)
    assert vocab[: len(SPECIAL_TOKENS)] == list(SPECIAL_TOKENS)
    assert vocab[len(SPECIAL_TOKENS) :] == ["上", "海", "b"]
    assert build_vocab(["海上上", "b"], min_count=2)[len(SPECIAL_TOKENS) :] == ["上"]


def test_vocab_round_trip_and_errors(tmp_path):
    path = tmp_path / "vocab.txt"
    save_vocab(TOY_VOCAB, path)
    assert read_vocab(path) == TOY_VOCAB
    with pytest.raises(InputError, match="not found"):
        read_vocab(tmp_path / "missing.txt")
    (tmp_path / "bad.txt").write_text("a\nb\n")
    with pytest.raises(InputError, match=r"bad.txt: vocab has no \[PAD\]"):
        read_vocab(tmp_path / "bad.txt")


def test_lookup_is_core_tf_only(tmp_path, toy):
    """The tokenizer saved in a SavedModel loads where only tensorflow is imported."""
    module = tf.Module()
    module.tok = toy
    module.f = tf.function(lambda t: toy(t).to_tensor(-1), input_signature=[tf.TensorSpec([None], tf.string)])
    tf.saved_model.save(module, str(tmp_path / "m"))
    code = (
        "import sys, tensorflow as tf\n"
        f"m = tf.saved_model.load({str(tmp_path / 'm')!r})\n"
        "print(m.f(tf.constant(['上海A', ''])).numpy().tolist())\n"
        "assert 'kner' not in sys.modules and 'tensorflow_text' not in sys.modules\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[[6, 7, 8], [-1, -1, -1]]"


def test_tokenize_gives_each_character_its_own_offsets(toy):
    texts = ["上海 A😀", "", "a\x01"]
    out = toy.tokenize(tf.constant(texts))
    assert out.ids.to_list() == toy(tf.constant(texts)).to_list()
    for i, text in enumerate(texts):
        expected = toy.encode_with_offsets(text)
        assert (out.ids[i].numpy().tolist(), out.starts[i].numpy().tolist(), out.ends[i].numpy().tolist()) == expected
        assert expected.starts == list(range(len(text))) and expected.ends == list(range(1, len(text) + 1))
    assert (toy.pad_id, toy.unk_id, toy.cls_id, toy.sep_id, toy.mask_id) == (0, 2, 3, 4, 5)
