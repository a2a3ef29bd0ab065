"""kner's WordPiece tokenizer against Hugging Face's BertTokenizerFast
pipeline (tests/wordpiece_reference.py): ids and character offsets, both
English vocabs, cased and uncased; and its Python, tf.data and SavedModel
paths against each other."""

import itertools
import json
import os
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from shared_data import shared_file
from wordpiece_reference import excluded_ranges, is_excluded, reference_encodings, reference_tokenizer

from kner.data.corpus import read_corpus
from kner.data.wordpiece import WordPieceTokenizer

C_LOADER = Path(__file__).resolve().parents[2] / "tools" / "c_loader"
VOCABS = {"cased": "vocab/bert-base-cased-vocab.txt", "uncased": "vocab/bert-base-uncased-vocab.txt"}
# (vocab, lowercase): each vocab with its own casing, and with the other.
SETTINGS = [("cased", False), ("uncased", True), ("cased", True), ("uncased", False)]
MIXED = [
    "张三在Google北京office工作，用iPhone 15 Pro拍了photo。",
    "2023年NBA总决赛：Denver Nuggets 4-1 Miami Heat",
    "他说“Hello, World!”然后去了München和Zürich。",
    "ＡＢＣ全角ｌｅｔｔｅｒｓ和half-width混排",
    "中文English混合text，含emoji😀和数字3.14159",
]
HARD = [
    "",
    " ",
    "\t\n\r ",
    "unaffable Héllo naïve café résumé",
    "ÉCOLE Ünïcödé İstanbul ΣΟΦΙΑΣ straße Ǆemal",
    "e\u0301 a\u0300\u0316 \u0301x",
    "👩\u200d💻 👨\u200d👩\u200d👧 🏳\ufe0f\u200d🌈 👍🏽",
    "a\x00b\ufffdc\x7fd\u200be\u00adf\ufeffg\x85h",
    "wait...!!?? --- (((x))) $100 #tag @user ^_^ `code`",
    "x" * 199 + " " + "y" * 200 + " " + "z" * 201 + " " + "q" * 250,
    "한국어 텍스트 ﬁnance Ⅻ ½ ㍻",
    "\u3000全角空格\u00a0nbsp\u2028line\u2029para",
    "𠀀𠀁 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛",
]


@pytest.fixture(scope="module", params=SETTINGS, ids=lambda s: f"{s[0]}-vocab-lowercase={s[1]}")
def pair(request):
    """kner's tokenizer and the reference, for one vocab and casing."""
    name, lowercase = request.param
    path = shared_file(VOCABS[name])
    return WordPieceTokenizer(path, lowercase=lowercase), reference_tokenizer(path, lowercase)


def graph_encodings(tokenizer: WordPieceTokenizer, texts: list[str]) -> list[tuple]:
    out = tokenizer.tokenize(tf.constant(texts, tf.string, shape=[len(texts)]))
    rows = [t.to_list() for t in out]
    return [tuple(r[i] for r in rows) for i in range(len(texts))]


def assert_same_as_reference(pair, texts: list[str]) -> None:
    tokenizer, reference = pair
    expected = reference_encodings(reference, texts)
    python = [tuple(tokenizer.encode_with_offsets(text)) for text in texts]
    graph = graph_encodings(tokenizer, texts)
    for text, want, got_python, got_graph in zip(texts, expected, python, graph):
        assert got_python == want, text
        assert got_graph == want, text


def wnut_texts() -> list[str]:
    return [s.text for split in ("train", "dev", "test") for s in read_corpus(shared_file(f"wnut17/{split}.conll"))]


def test_wnut17_equals_the_reference(pair):
    texts = wnut_texts()
    assert len(texts) == 3394 + 1009 + 1287
    assert_same_as_reference(pair, texts)


def test_chinese_with_english_words_equals_the_reference(pair):
    cluener = [s.text for s in read_corpus(shared_file("cluener/dev.json"))]
    with_latin = [text for text in cluener if any("a" <= c.lower() <= "z" for c in text)]
    assert len(with_latin) > 100
    assert_same_as_reference(pair, MIXED + with_latin)


def test_the_chinese_vocab_on_mixed_text_equals_the_reference():
    """Chinese checkpoints keep one token per character by default; with
    WordPiece (mixed text), their vocab works the same way."""
    path = shared_file("vocab/bert-base-chinese-vocab.txt")
    pair = WordPieceTokenizer(path, lowercase=True), reference_tokenizer(path, lowercase=True)
    assert_same_as_reference(pair, MIXED + HARD + [s.text for s in read_corpus(shared_file("cluener/dev.json"))])


def test_hard_strings_equal_the_reference(pair):
    assert_same_as_reference(pair, HARD)


@pytest.mark.parametrize("lowercase, expected", [(False, ["Café"]), (True, ["cafe"])])
def test_lowercase_strips_case_and_accents(lowercase, expected):
    tokenizer = WordPieceTokenizer(shared_file(VOCABS["cased"]), lowercase=lowercase)
    assert [tokenizer.vocabulary[i] for i in tokenizer.encode("Café")] == expected


def test_offsets_index_the_original_text():
    tokenizer = WordPieceTokenizer(shared_file(VOCABS["uncased"]), lowercase=True)
    text = "Héllo\u200bworld, unaffable 上海!"  # a zero-width space, dropped inside a word
    ids, starts, ends = tokenizer.encode_with_offsets(text)
    assert [tokenizer.vocabulary[i] for i in ids] == ["hello", "##world", ",", "una", "##ffa", "##ble", "上", "海", "!"]
    assert [text[s:e] for s, e in zip(starts, ends)] == ["Héllo", "world", ",", "una", "ffa", "ble", "上", "海", "!"]


def test_long_words_are_one_unknown_token():
    tokenizer = WordPieceTokenizer(shared_file(VOCABS["uncased"]), lowercase=True)
    ids, starts, ends = tokenizer.encode_with_offsets("a" * 200 + " " + "a" * 201)
    assert ids[-1] == tokenizer.unk_id and (starts[-1], ends[-1]) == (201, 402)
    assert tokenizer.unk_id not in ids[:-1] and len(ids) > 2


def test_a_word_without_a_split_is_one_unknown_token():
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "ab", "##c", "x"]
    tokenizer = WordPieceTokenizer(vocab, lowercase=False)
    assert tokenizer.encode_with_offsets("abc abd x") == ([4, 5, 1, 6], [0, 2, 4, 8], [2, 3, 7, 9])
    assert graph_encodings(tokenizer, ["abc abd x"]) == [([4, 5, 1, 6], [0, 2, 4, 8], [2, 3, 7, 9])]


def test_invalid_utf8_bytes_are_one_dropped_character_each():
    tokenizer = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "ab", "##cd"], lowercase=False)
    out = tokenizer.tokenize(tf.constant([b"ab\xff\xfecd"]))
    # "ab" U+FFFD U+FFFD "cd": the replacement characters are dropped inside the word.
    assert (out.ids.to_list(), out.starts.to_list(), out.ends.to_list()) == ([[4, 5]], [[0, 4]], [[2, 6]])


# Hard strings: the pieces a generated text is made of.
_LATIN = "aeiouAEIOUnNcCsSyYzZ"
_COMBINING = [chr(c) for c in range(0x300, 0x370)] + ["\u20dd", "\u0489", "\u1ab0"]
_PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~¡¿«»—–…‘’“”、。，！？《》【】・"
_CONTROL = [chr(c) for c in itertools.chain(range(0, 32), range(0x7F, 0xA0))] + list(
    "\u00ad\u200b\u200c\u200d\u200e\u200f\u2028\u2029\u2060\ufeff\ufffd\U000e0001"
)
_SPACES = list(" \t\n\r\u3000\u00a0\u2002\u202f\u205f\u1680")
_EMOJI = ["👩\u200d💻", "👨\u200d👩\u200d👧\u200d👦", "🏳\ufe0f\u200d🌈", "👍🏽", "❤\ufe0f", "🇨🇳", "😀"]
_CASED = "ΣΑΒΓΔΕİIıiÅÆØßẞǅǄΩKÅﬁﬀＡＺａｚ" + "АБВГДЖЁё"


def _allowed(char: str) -> bool:
    return unicodedata.category(char) != "Cs" and not is_excluded(ord(char), lowercase=True)


_PIECES = st.one_of(
    st.text(st.characters(exclude_categories=["Cs", "Co"]).filter(_allowed), max_size=6),
    st.text(st.sampled_from(list(_LATIN) + _COMBINING), min_size=1, max_size=10),
    st.text(st.sampled_from(_CASED + _LATIN), min_size=1, max_size=10),
    st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), min_size=1, max_size=5),
    st.text(st.characters(min_codepoint=0xAC00, max_codepoint=0xD7A3), min_size=1, max_size=3),
    st.text(st.sampled_from(_PUNCTUATION), min_size=1, max_size=8),
    st.text(st.sampled_from(_CONTROL), min_size=1, max_size=3),
    st.text(st.sampled_from(_SPACES), min_size=1, max_size=3),
    st.sampled_from(_EMOJI),
    st.sampled_from(["unaffable", "running", "Washington", "COVID-19", "e-mail", "isn't", "1,234.5"]),
    st.text(st.sampled_from("abcdeéxyz"), min_size=195, max_size=260),
)
_TEXTS = st.lists(st.lists(_PIECES, max_size=10).map("".join), min_size=1, max_size=4)


@settings(max_examples=150, deadline=None)
@given(texts=_TEXTS)
def test_generated_hard_strings_equal_the_reference(pair, texts):
    assert_same_as_reference(pair, texts + [""])


def test_python_tf_data_and_saved_model_agree(tmp_path):
    tokenizer = WordPieceTokenizer(shared_file(VOCABS["cased"]), lowercase=False)
    texts = HARD + MIXED
    python = [tuple(tokenizer.encode_with_offsets(t)) for t in texts]
    dataset = tf.data.Dataset.from_tensor_slices(tf.constant(texts)).batch(4).map(tokenizer.tokenize)
    from_data = [tuple(r) for batch in dataset for r in zip(*(t.to_list() for t in batch))]
    assert from_data == python

    module = tf.Module()
    module.tokenizer = tokenizer
    module.tokenize = tf.function(
        lambda texts: {name: t.to_tensor(-1) for name, t in tokenizer.tokenize(texts)._asdict().items()},
        input_signature=[tf.TensorSpec([None], tf.string)],
    )
    tf.saved_model.save(module, str(tmp_path / "tokenizer"))
    del module
    loaded = tf.saved_model.load(str(tmp_path / "tokenizer"))
    out = {name: t.numpy().tolist() for name, t in loaded.tokenize(tf.constant(texts)).items()}
    rows = zip(*(out[name] for name in ("ids", "starts", "ends")))
    assert [tuple([v for v in column if v != -1] for column in row) for row in rows] == python


@pytest.mark.slow
def test_an_export_tokenizes_in_tensorflows_c_loader(tmp_path):
    """The tokenizer alone, exported with a `serving_default(text)`
    signature, in tools/c_loader/run_export (no Python in the process)."""
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        pytest.skip("no C compiler (cc, gcc or clang) on PATH to build tools/c_loader/run_export.c")
    tokenizer = WordPieceTokenizer(shared_file(VOCABS["cased"]), lowercase=False)
    module = tf.Module()
    module.tokenizer = tokenizer

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(text):
        out = tokenizer.tokenize(text)
        return {"num_tokens": tf.cast(out.ids.row_lengths(), tf.int32)} | {
            name: values.to_tensor(-1) for name, values in out._asdict().items()
        }

    tf.saved_model.save(module, str(tmp_path / "export" / "1"), signatures={"serving_default": serve})
    binary = tmp_path / "run_export"
    env = {**os.environ, "PYTHON": sys.executable, "CC": compiler}
    built = subprocess.run(["sh", str(C_LOADER / "build.sh"), str(binary)], env=env, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-3000:]

    texts = HARD + MIXED
    lines = "".join(json.dumps(text) + "\n" for text in texts).encode()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [str(binary), f"--export_dir={tmp_path / 'export'}", "--batch_size=4"]
    ran = subprocess.run(command, input=lines, capture_output=True, env=env)
    assert ran.returncode == 0, ran.stderr[-3000:]
    rows = [json.loads(line) for line in ran.stdout.decode().splitlines()]
    got = [tuple(row[name][: row["num_tokens"]] for name in ("ids", "starts", "ends")) for row in rows]
    assert got == [tuple(tokenizer.encode_with_offsets(text)) for text in texts]


def differing_code_points(name: str, lowercase: bool, code_points: list[int]) -> list[int]:
    """The code points between two letters where kner's Python path and the reference differ."""
    path = shared_file(VOCABS[name])
    tokenizer, reference = WordPieceTokenizer(path, lowercase=lowercase), reference_tokenizer(path, lowercase)
    differ = []
    for start in range(0, len(code_points), 50_000):
        chunk = code_points[start : start + 50_000]
        texts = [f"a{chr(c)}b" for c in chunk]
        for code, text, want in zip(chunk, texts, reference_encodings(reference, texts)):
            if tuple(tokenizer.encode_with_offsets(text)) != want:
                differ.append(code)
    return differ


@pytest.mark.slow
def test_the_excluded_code_points_are_exactly_where_the_reference_differs():
    """Every code point, uncased: kner equals the reference outside the list
    in tests/wordpiece_reference.py, and differs on every code point of it
    (so the list hides nothing it need not). About a minute."""
    if unicodedata.unidata_version != "14.0.0":
        pytest.skip(f"the list is for Unicode 14.0 (Python 3.11); this Python has {unicodedata.unidata_version}")
    code_points = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    assert differing_code_points("uncased", True, code_points) == [c for c in code_points if is_excluded(c, True)]


def test_cased_differs_on_the_list_but_not_on_newer_marks():
    """Cased, the marks the reference does not know are kept by both."""
    listed = [c for low, high in excluded_ranges(lowercase=True) for c in range(low, high + 1)]
    differ = differing_code_points("cased", False, listed)
    assert differ == [c for c in listed if is_excluded(c, lowercase=False)]
    assert len(differ) < len(listed)
