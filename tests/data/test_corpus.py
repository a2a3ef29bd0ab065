import json
import logging
from pathlib import Path

import pytest
from shared_data import SHARED_DATA as DATA
from shared_data import shared_file

from kner.data.corpus import Sentence, detect_format, read_corpus, write_cluener, write_cmeee, write_column
from kner.data.spans import Span
from kner.data.tags import SCHEMES
from kner.errors import InputError

GOOD = '{"text": "ab", "label": {}}\n'
SURROGATE_LINE = (
    r'{"text": "\ud83d\u738b\u5c0f\u4e8c\u5728\u676d\u5dde", "label": {"name": {"\u738b\u5c0f\u4e8c": [[1, 3]]}}}'
    + "\n"
)

# (name, file content or None for a missing file, line or None, message part)
BAD_INPUTS = [
    ("malformed.json", GOOD + '{"text": "cd", \n', 2, "malformed JSON"),
    ("array.json", GOOD + "[1, 2]\n", 2, "expected a JSON object"),
    ("no_text.json", '{"label": {}}\n', 1, "missing 'text'"),
    (
        "label_shape.json",
        GOOD * 2 + '{"text": "ab", "label": {"name": {"a": [0, 0]}}}\n',
        3,
        "must be {type: {entity: [[start, end], ...]}}",
    ),
    (
        "out_of_range.json",
        GOOD + '{"text": "abc", "label": {"name": {"c": [[2, 3]]}}}\n',
        2,
        "span [2, 3] of name 'c' is outside the text (length 3)",
    ),
    (
        "mismatch.json",
        GOOD + '{"text": "abc", "label": {"name": {"ab": [[1, 2]]}}}\n',
        2,
        "span [1, 2] of name 'ab' covers 'bc'",
    ),
    (
        "cmeee_mismatch.json",
        '[\n {"text": "ab", "entities": []},\n {"text": "abc", "entities": [\n'
        '  {"start_idx": 0, "end_idx": 1, "type": "x", "entity": "bc"}]}\n]',
        3,
        "record 1: entity 0 [0, 1] x 'bc' covers 'ab'",
    ),
    (
        "cmeee_outside.json",
        '[{"text": "abc", "entities": [{"start_idx": 2, "end_idx": 3, "type": "x", "entity": "c"}]}]',
        1,
        "record 0: entity 0 [2, 3] x 'c' is outside the text (length 3)",
    ),
    (
        "cmeee_backwards.json",
        '[{"text": "abc", "entities": [{"start_idx": 2, "end_idx": 0, "type": "x", "entity": "c"}]}]',
        1,
        "record 0: entity 0 [2, 0] x 'c': end_idx is before start_idx",
    ),
    (
        "cmeee_empty_entity.json",
        '[{"text": "abc", "entities": [{"start_idx": 2, "end_idx": 1, "type": "x", "entity": ""}]}]',
        1,
        "end_idx is before start_idx; --lenient drops an empty entity (end_idx = start_idx - 1)",
    ),
    (
        "cmeee_field.json",
        '[{"text": "abc", "entities": [{"start_idx": 0, "end_idx": 1, "type": "x"}]}]',
        1,
        'record 0: entity 0 must be {"start_idx": int, "end_idx": int, "type": str, "entity": str}',
    ),
    ("cmeee_malformed.json", '[\n {"text": "a"},\n {"text": }\n]', 3, "record 1: malformed JSON"),
    ("cmeee_record.json", '[\n {"text": "a"},\n 7\n]', 3, 'record 1: expected an object with a "text" string'),
    ("cmeee_trailing.json", '[{"text": "a"}] []', 1, "extra data after the list"),
    ("no_tag.txt", "中 O\n\n文 O\n国\n", 4, "expected 'character tag', got '国'"),
    ("word.txt", "中 O\n\n中国 B-LOC\n", 3, "expected one character before the tag, got '中国' (one word a line? --"),
    ("no_tag.conll", "EU B-ORG\nrejects O\n\nGerman\n", 4, "missing tag column: expected 'word tag'"),
    ("mixed.conll", "EU NNP B-ORG\nrejects VBZ O\n\nGerman O\n", 4, "2 columns, but line 1 has 3 (mixed column"),
    ("unknown.conll", "EU B-ORG\nrejects X-MISC\n", 2, "unknown tag prefix 'X' in 'X-MISC'"),
    ("typeless.conll", "EU B-ORG\nrejects PER\n", 2, "unknown tag prefix 'PER'"),
    (
        "iob1.conll",
        "-DOCSTART- O\n\nEU O\nrejects I-MISC\n",
        4,
        "'I-MISC' continues no entity (expected B-MISC before it); --lenient starts the entity at this tag; "
        "an IOB1 file (CoNLL-2003's original release) needs --input_tag_scheme=iob1",
    ),
    ("prefix.txt", "中 O\n文 X-PER\n", 2, "unknown tag prefix 'X'"),
    ("orphan.txt", "中 O\n\n中 O\n文 I-PER\n", 4, "'I-PER' continues no entity (expected B-PER before it); --lenient"),
    ("unclosed.txt", "中 B-ORG\n文 M-ORG\n", 2, "entity not closed with E-ORG; --lenient ends the entity at 'M-ORG'"),
    # The issue-11 line: json.loads accepts a lone surrogate, UTF-8 cannot encode it.
    (
        "surrogate.json",
        GOOD + SURROGATE_LINE,
        2,
        "text character 0 is a lone surrogate U+D83D, which UTF-8 cannot encode: most likely a broken \\u escape",
    ),
    (
        "surrogate_type.json",
        r'{"text": "ab", "label": {"\udc00": {"a": [[0, 0]]}}}' + "\n",
        1,
        "entity type character 0 is a lone surrogate U+DC00",
    ),
    (
        "cesu.txt",
        "中 O\n".encode() + b"\xed\xa0\xbd O\n",
        2,
        "not valid UTF-8 at column 1 (byte 0xed): an encoded surrogate",
    ),
    ("empty.txt", "", None, "file is empty"),
    ("blank.json", "\n  \n\n", None, "file is empty"),
    ("latin1.txt", "中 O\n".encode() + b"\xe9 O\n", 2, "not valid UTF-8 at column 1 (byte 0xe9)"),
    ("missing.json", None, None, "no such file or directory"),
]


def write_bad_input(tmp_path: Path, name: str, content: str | bytes | None) -> Path:
    """The bad file in `tmp_path` (not created when `content` is None)."""
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    elif content is not None:
        path.write_bytes(content)
    return path


@pytest.mark.parametrize("name, content, line, message", BAD_INPUTS)
def test_bad_input(tmp_path, name, content, line, message):
    path = write_bad_input(tmp_path, name, content)
    with pytest.raises(InputError) as caught:
        read_corpus(path)
    error = caught.value
    assert (error.path, error.line) == (str(path), line)
    assert message in error.message
    location = f"{path}:{line}" if line else str(path)
    assert str(error) == f"{location}: {error.message}"


def test_read_cluener(tmp_path, caplog):
    path = tmp_path / "train.json"
    record = {
        "text": "《招商银行：投资》的文章",
        "label": {
            "book": {"《招商银行：投资》": [[0, 8]]},
            "company": {"招商银行": [[1, 4], [1, 4]]},
            "name": {"文": [[10, 10]]},
        },
    }
    path.write_text("\n" + json.dumps(record, ensure_ascii=False) + "\n")
    with caplog.at_level(logging.WARNING):
        [sentence] = read_corpus(path)
    assert sentence == Sentence(
        record["text"],
        [Span(0, 8, "book"), Span(1, 4, "company"), Span(10, 10, "name")],
        None,
        str(path),
        2,
    )
    assert not caplog.text  # nested spans are data; the heads decide (kner.cli.check_spans)


def test_cluener_keeps_crossing_and_same_extent_spans(tmp_path):
    path = tmp_path / "overlaps.json"
    label = {"x": {"abc": [[0, 2]], "ab": [[0, 1]]}, "y": {"cd": [[2, 3]], "ab": [[0, 1]]}}
    path.write_text(json.dumps({"text": "abcd", "label": label}) + "\n")
    [sentence] = read_corpus(path)
    assert sentence.spans == [Span(0, 1, "x"), Span(0, 1, "y"), Span(0, 2, "x"), Span(2, 3, "y")]


CMEEE = [
    {
        "text": "肺内病变伴右肺门增大",
        "entities": [
            {"start_idx": 0, "end_idx": 3, "type": "sym", "entity": "肺内病变"},
            {"start_idx": 0, "end_idx": 1, "type": "bod", "entity": "肺内"},
            {"start_idx": 5, "end_idx": 7, "type": "bod", "entity": "右肺门"},
            {"start_idx": 5, "end_idx": 7, "type": "sym", "entity": "右肺门"},  # same extent, two types
            {"start_idx": 6, "end_idx": 9, "type": "sym", "entity": "肺门增大"},  # crosses 5-7
        ],
    },
    {"text": "无", "entities": []},
    {"text": "😀检查", "entities": [{"start_idx": 1, "end_idx": 2, "type": "pro", "entity": "检查"}]},
]


def test_cmeee_round_trip_is_identical_with_every_kind_of_overlap(tmp_path):
    source = tmp_path / "cmeee.json"
    source.write_text(json.dumps(CMEEE, ensure_ascii=False, indent=1), encoding="utf-8")
    sentences = read_corpus(source)
    assert detect_format(source) == "cmeee"
    assert [len(s.spans) for s in sentences] == [5, 0, 1]
    assert sentences[0].spans[:2] == [Span(0, 3, "sym"), Span(0, 1, "bod")]  # file order kept
    assert [s.line for s in sentences] == [2, 37, 41]  # where each record opens
    written = tmp_path / "again.json"
    write_cmeee(written, sentences)
    assert written.read_bytes() == source.read_bytes()


def test_cmeee_lenient_drops_empty_entities(tmp_path, caplog):
    path = tmp_path / "empty.json"
    entities = [{"start_idx": 1, "end_idx": 0, "type": "pro", "entity": ""}, CMEEE[2]["entities"][0]]
    path.write_text(json.dumps([{"text": "😀检查", "entities": entities}], ensure_ascii=False))
    with caplog.at_level(logging.WARNING):
        [sentence] = read_corpus(path, strict=False)
    assert sentence.spans == [Span(1, 2, "pro")]
    assert "dropped 1 empty entities (end_idx = start_idx - 1) in 1 record(s) (first at line 1)" in caplog.text


def test_unlabelled_cmeee_records_have_no_spans(tmp_path):
    path = tmp_path / "test.json"
    path.write_text('[{"text": "肺内"}, {"text": ""}]')
    assert [(s.text, s.spans) for s in read_corpus(path, "cmeee")] == [("肺内", None), ("", None)]


def test_read_unlabelled_cluener():
    path = DATA / "cluener" / "test.json"
    if not path.exists():
        pytest.skip(f"CLUENER test set not found at {path}")
    sentences = read_corpus(path)
    assert len(sentences) == 1345
    assert all(sentence.spans is None for sentence in sentences)
    assert [sentence.id for sentence in sentences[:3]] == [0, 1, 2]
    assert sentences[1].text.startswith("尼日利亚海军发言人")


def test_cluener_write_read_round_trip(tmp_path):
    sentences = [
        Sentence("叶老桂在浙商银行", [Span(4, 7, "company"), Span(0, 2, "name")]),
        Sentence("无实体", []),
        Sentence("未标注", None, id="t-1"),
        Sentence("换行\n和\u2028", [Span(3, 3, "x")], id=7),
    ]
    write_cluener(tmp_path / "out.json", sentences)
    lines = (tmp_path / "out.json").read_text(encoding="utf-8").split("\n")
    assert json.loads(lines[0]) == {
        "text": "叶老桂在浙商银行",
        "label": {"name": {"叶老桂": [[0, 2]]}, "company": {"浙商银行": [[4, 7]]}},
    }
    assert json.loads(lines[2]) == {"id": "t-1", "text": "未标注"}
    read = read_corpus(tmp_path / "out.json")
    assert [(s.text, s.spans, s.id) for s in read] == [(s.text, s.spans and sorted(s.spans), s.id) for s in sentences]


def test_write_submission(tmp_path):
    text = "尼日利亚海军发言人当天在阿布贾向尼日利亚通讯社证实了这一消息。"
    spans = [
        Span(0, 5, "goverment"),
        Span(12, 14, "address"),
        Span(16, 22, "goverment"),
    ]
    write_cluener(tmp_path / "predict.json", [Sentence(text, spans, 1)], submission=True)
    expected = (
        '{"id": 1, "label": {"goverment": {"尼日利亚海军": [[0, 5]], '
        '"尼日利亚通讯社": [[16, 22]]}, "address": {"阿布贾": [[12, 14]]}}}\n'
    )
    assert (tmp_path / "predict.json").read_text(encoding="utf-8") == expected
    with pytest.raises(ValueError, match="needs an id"):
        write_cluener(tmp_path / "x.json", [Sentence(text, spans)], submission=True)


COLUMN_SENTENCES = [
    Sentence("a b\u3000{-O", [Span(0, 2, "x-y"), Span(4, 4, "O")]),
    Sentence(" 中", [Span(1, 1, "LOC")]),
    Sentence("文", []),
]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_column_write_read_round_trip(tmp_path, scheme):
    path = tmp_path / f"out.{scheme}"
    write_column(path, COLUMN_SENTENCES, scheme)
    for tag_scheme in ("auto", scheme):
        read = read_corpus(path, tag_scheme=tag_scheme)
        assert [(s.text, s.spans) for s in read] == [(s.text, s.spans) for s in COLUMN_SENTENCES]
        assert [s.line for s in read] == [1, 9, 12]


def test_column_spacing_line_ends_and_bom(tmp_path):
    path = tmp_path / "in.txt"
    content = "\ufeff\n\n中\tB-LOC  \r\n国 I-LOC\r\n  O\r\n\r\n\r\n\u3000\tO\n人  S-PER"
    path.write_text(content, encoding="utf-8")
    sentences = read_corpus(path, tag_scheme="bios")
    assert [(s.text, s.spans, s.line) for s in sentences] == [
        ("中国 ", [Span(0, 1, "LOC")], 3),
        ("\u3000人", [Span(1, 1, "PER")], 8),
    ]


def test_column_file_starting_with_brace(tmp_path):
    path = tmp_path / "brace.txt"
    path.write_text("{ O\n} O\n")
    assert read_corpus(path)[0].text == "{}"
    with pytest.raises(InputError, match=r"brace.txt:1: malformed JSON"):
        read_corpus(path, fmt="cluener")


def test_given_scheme_overrides_detection(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("中 B-LOC\n国 E-LOC\n")
    assert read_corpus(path)[0].spans == [Span(0, 1, "LOC")]
    with pytest.raises(InputError, match=r"in.txt:2: unknown tag prefix 'E'"):
        read_corpus(path, tag_scheme="bio")


def test_lenient_column_repairs_and_warns(tmp_path, caplog):
    path = tmp_path / "in.txt"
    path.write_text("中 I-LOC\n国 I-LOC\n\n人 O\n\n人 B-PER\n民 I-LOC\n")
    with caplog.at_level(logging.WARNING):
        sentences = read_corpus(path, strict=False)
    assert [s.spans for s in sentences] == [
        [Span(0, 1, "LOC")],
        [],
        [Span(0, 0, "PER"), Span(1, 1, "LOC")],
    ]
    assert "repaired 2 invalid bio tag(s) in 2 sentence(s) (first at line 1)" in caplog.text


def test_write_column_rejects_what_it_cannot_hold(tmp_path):
    with pytest.raises(ValueError, match="unlabelled"):
        write_column(tmp_path / "x", [Sentence("ab", None)], "bio")
    with pytest.raises(ValueError, match="line break"):
        write_column(tmp_path / "x", [Sentence("a\nb", [])], "bio")


def test_real_cluener_dev_through_every_format(tmp_path):
    path = DATA / "cluener" / "dev.json"
    if not path.exists():
        pytest.skip(f"CLUENER dev set not found at {path}")
    sentences = read_corpus(path)
    expected = [(s.text, s.spans) for s in sentences]
    assert len(expected) == 1343
    write_cluener(tmp_path / "dev.json", sentences)
    read = read_corpus(tmp_path / "dev.json")
    assert [(s.text, s.spans) for s in read] == expected
    for scheme in SCHEMES:
        write_column(tmp_path / f"dev.{scheme}", sentences, scheme)
        read = read_corpus(tmp_path / f"dev.{scheme}")
        assert [(s.text, s.spans) for s in read] == expected


def test_real_peoples_daily_needs_lenient():
    path = DATA / "peoples_daily" / "dev.txt"
    if not path.exists():
        pytest.skip(f"People's Daily dev set not found at {path}")
    with pytest.raises(InputError, match=r"dev.txt:29083: 'I-PER' continues no entity"):
        read_corpus(path)
    sentences = read_corpus(path, strict=False)
    assert len(sentences) == 4631
    assert {span.type for s in sentences for span in s.spans} == {"LOC", "ORG", "PER"}


def test_lenient_replaces_lone_surrogates_keeping_offsets(tmp_path, caplog):
    path = tmp_path / "bad.json"
    path.write_text(GOOD + SURROGATE_LINE, encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        _, sentence = read_corpus(path, strict=False)
    assert sentence.text == "\ufffd王小二在杭州"
    assert sentence.spans == [Span(1, 3, "name")]
    assert "replaced 1 lone surrogate(s)" in caplog.text
    write_cluener(tmp_path / "out.json", [sentence])  # encodable now
    assert read_corpus(tmp_path / "out.json")[0] == Sentence(
        sentence.text, sentence.spans, None, str(tmp_path / "out.json"), 1
    )


def test_lenient_replaces_each_invalid_utf8_sequence_by_one_character(tmp_path, caplog):
    path = tmp_path / "bad.txt"
    path.write_bytes("中 O\n".encode() + b"\xed\xa0\xbd B-x\n\xe9 I-x\n")
    with caplog.at_level(logging.WARNING):
        (sentence,) = read_corpus(path, strict=False)
    assert sentence.text == "中\ufffd\ufffd"
    assert sentence.spans == [Span(1, 2, "x")]
    assert "replaced 2 invalid UTF-8 sequence(s) with U+FFFD (first at line 2)" in caplog.text


@pytest.mark.parametrize("writer", ["cluener", "column"])
def test_writers_leave_no_partial_file(tmp_path, writer):
    """A sentence that cannot be written (a lone surrogate from the Python
    API, or a line break for column files) after good ones: the existing
    output stays as it was and no temporary file is left."""
    good = Sentence("张三", [Span(0, 1, "name")])
    bad = Sentence("\ud83d张" if writer == "cluener" else "张\n三", [])
    out = tmp_path / "out"
    out.write_text("before\n")
    with pytest.raises((UnicodeEncodeError, ValueError)):
        if writer == "cluener":
            write_cluener(out, [good] * 3 + [bad])
        else:
            write_column(out, [good] * 3 + [bad], "bios")
    assert out.read_text() == "before\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


# CoNLL-2003's layout (word, part of speech, chunk, tag), with its original IOB1 tags.
CONLL_IOB1 = """-DOCSTART- -X- -X- O

EU NNP I-NP I-ORG
rejects VBZ I-VP O
German JJ I-NP I-MISC
call NN I-NP O
to TO I-VP O
boycott VB I-VP O
British JJ I-NP I-MISC
lamb NN I-NP O
. . O O

Peter NNP I-NP I-PER
Blackburn NNP I-NP I-PER
  \t
Hans NNP I-NP I-PER
Peter NNP I-NP B-PER
Smith NNP I-NP I-PER
met VBD I-VP O
-DOCSTART- -X- -X- O
S.Korea NNP I-NP I-LOC
"""
CONLL_SPANS = [
    ("EU rejects German call to boycott British lamb .", [(0, 1, "ORG"), (11, 16, "MISC"), (34, 40, "MISC")]),
    ("Peter Blackburn", [(0, 14, "PER")]),
    ("Hans Peter Smith met", [(0, 3, "PER"), (5, 15, "PER")]),
    ("S.Korea", [(0, 6, "LOC")]),
]


def test_conll_iob1_reads_as_the_iob2_tags_of_the_same_spans(tmp_path):
    path = tmp_path / "eng.train"
    path.write_text(CONLL_IOB1)
    sentences = read_corpus(path, tag_scheme="iob1")
    assert [(s.text, [tuple(span) for span in s.spans]) for s in sentences] == CONLL_SPANS
    assert [s.line for s in sentences] == [3, 13, 16, 21]
    assert all(s.text[a:b] == word for s in sentences for (a, b), word in zip(s.words, s.text.split(" ")))

    write_column(tmp_path / "eng.bio", sentences, "bio")
    written = (tmp_path / "eng.bio").read_text(encoding="utf-8").split("\n")
    assert written[:3] == ["EU B-ORG", "rejects O", "German B-MISC"]
    assert written[13:16] == ["Hans B-PER", "Peter B-PER", "Smith I-PER"]
    again = read_corpus(tmp_path / "eng.bio")  # detected: conll, and IOB2 is strict bio
    assert [(s.text, s.spans, s.words) for s in again] == [(s.text, s.spans, s.words) for s in sentences]


def test_conll_iob1_is_not_guessed(tmp_path):
    path = tmp_path / "eng.train"
    path.write_text(CONLL_IOB1)
    with pytest.raises(InputError, match=r"eng.train:3: 'I-ORG' continues no entity.*--input_tag_scheme=iob1"):
        read_corpus(path)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_conll_writes_one_tag_per_word(tmp_path, scheme):
    path = tmp_path / "eng.train"
    path.write_text(CONLL_IOB1)
    sentences = read_corpus(path, "conll", "iob1")
    write_column(tmp_path / "out", sentences, scheme)
    lines = (tmp_path / "out").read_text(encoding="utf-8").split("\n")
    assert len(lines) == sum(len(s.words) + 1 for s in sentences) + 1
    again = read_corpus(tmp_path / "out", "conll", scheme)
    assert [(s.text, s.spans, s.words) for s in again] == [(s.text, s.spans, s.words) for s in sentences]


def test_conll_writer_refuses_spans_off_word_boundaries(tmp_path):
    sentence = read_corpus(write_bad_input(tmp_path, "in.conll", "New B-LOC\nYork I-LOC\n"))[0]
    sentence.spans = [Span(0, 5, "LOC")]  # "New Yo"
    with pytest.raises(ValueError, match=r"sentence 0: span \[0, 5\] LOC does not fall on word boundaries"):
        write_column(tmp_path / "out", [sentence], "bio")
    assert not (tmp_path / "out").exists()


def test_auto_tells_words_from_characters(tmp_path):
    chars = write_bad_input(tmp_path, "chars.txt", "中 B-LOC\n国 I-LOC\n\n  O\n")
    assert [(s.text, s.words) for s in read_corpus(chars)] == [("中国", None), (" ", None)]
    one_letter_words = write_bad_input(tmp_path, "words.txt", "I O\nam O\n")
    assert read_corpus(one_letter_words)[0].words == [(0, 1), (2, 4)]
    docstart = write_bad_input(tmp_path, "docstart.txt", "-DOCSTART- O\n\nI O\n")
    assert read_corpus(docstart)[0].words == [(0, 1)]
    # Given, the format wins over detection.
    with pytest.raises(InputError, match="words.txt:2: expected one character before the tag, got 'am'"):
        read_corpus(one_letter_words, "column")


WNUT17 = [("train", 3394, 1975), ("dev", 1009, 836), ("test", 1287, 1079)]


@pytest.mark.parametrize("split, sentences, entities", WNUT17)
def test_real_wnut17(split, sentences, entities):
    read = read_corpus(shared_file(f"wnut17/{split}.conll"))
    assert len(read) == sentences
    assert sum(len(s.spans) for s in read) == entities
    first = read[0]
    assert first.words[0] == (0, len(first.text.split(" ")[0]))
    if split == "train":  # its first entity, as the file has it
        assert first.text[first.spans[0].start : first.spans[0].end + 1] == "Empire State Building"
        assert first.spans[0].type == "location"
