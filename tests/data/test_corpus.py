import json
import logging
from pathlib import Path

import pytest
from shared_data import SHARED_DATA as DATA

from kner.data.corpus import Sentence, read_corpus, write_cluener, write_column
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
        "overlap.json",
        GOOD + '{"text": "abcd", "label": {"x": {"abc": [[0, 2]]}, "y": {"cd": [[2, 3]]}}}',
        2,
        "overlapping spans [0, 2] x 'abc' and [2, 3] y 'cd'",
    ),
    (
        "two_types.json",
        '{"text": "abcd", "label": {"x": {"ab": [[0, 1]]}, "y": {"ab": [[0, 1]]}}}\n',
        1,
        "overlapping spans [0, 1] x 'ab' and [0, 1] y 'ab'",
    ),
    ("no_tag.txt", "中 O\n\n文 O\n国\n", 4, "expected 'character tag', got '国'"),
    ("word.txt", "中 O\n中国 B-LOC\n", 2, "expected one character before the tag"),
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
    assert "1 sentence(s) have an entity nested in another (first at line 2)" in caplog.text


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
