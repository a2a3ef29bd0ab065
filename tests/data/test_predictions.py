import json
import re

import pytest

from kner.data.corpus import Sentence, read_corpus, write_cluener, write_column
from kner.data.predictions import read_predictions
from kner.data.spans import Span
from kner.errors import InputError
from kner.predict import Entity, write_predictions

GOLD = [
    Sentence("张三在北京", [Span(0, 1, "name"), Span(3, 4, "loc")], id=7),
    Sentence("无", []),
    Sentence("李四去上海", [Span(0, 1, "name")], id="a"),
]
PREDICTED = [[Span(0, 1, "name"), Span(3, 4, "org")], [], [Span(0, 1, "name"), Span(3, 4, "loc")]]


def entities(sentence: Sentence, spans: list[Span]) -> list[Entity]:
    return [Entity(s.type, s.start, s.end, sentence.text[s.start : s.end + 1], 0.5) for s in spans]


@pytest.fixture
def gold_file(tmp_path):
    write_cluener(tmp_path / "gold.json", GOLD)
    return tmp_path / "gold.json"


@pytest.mark.parametrize(
    ("output_format", "joined"),
    [("jsonl", "by position"), ("cluener", "by position"), ("submission", "by id"), ("cmeee", "by position")],
)
def test_every_predict_output_format_reads_back(tmp_path, gold_file, output_format, joined):
    path = tmp_path / f"predictions.{output_format}"
    unlabelled = [Sentence(s.text, None, s.id) for s in GOLD]
    write_predictions(path, unlabelled, [entities(s, p) for s, p in zip(GOLD, PREDICTED)], output_format)
    gold = read_corpus(gold_file)
    assert read_predictions(path, gold) == (PREDICTED, joined)


def test_a_submission_joins_by_id_whatever_the_order(tmp_path, gold_file):
    """The gold sentence without an id is known by its position (1), as
    kner.predict numbers a submission's texts."""
    lines = [
        {"id": "a", "label": {"name": {"李四": [[0, 1]]}}},
        {"id": 1, "label": {}},
        {"id": 7, "label": {"loc": {"北京": [[3, 4]]}}},
    ]
    path = tmp_path / "submission.json"
    path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    predicted, joined = read_predictions(path, read_corpus(gold_file))
    assert joined == "by id"
    assert predicted == [[Span(3, 4, "loc")], [], [Span(0, 1, "name")]]


def test_column_predictions(tmp_path):
    gold = [Sentence("张三在北京", [Span(0, 1, "name")]), Sentence("李四", [])]
    write_column(
        tmp_path / "predicted.bios",
        [Sentence("张三在北京", [Span(3, 4, "loc")]), Sentence("李四", [Span(0, 1, "name")])],
        "bios",
    )
    assert read_predictions(tmp_path / "predicted.bios", gold) == (
        [[Span(3, 4, "loc")], [Span(0, 1, "name")]],
        "by position",
    )


def test_nested_overlapping_and_same_extent_predictions_are_kept(tmp_path):
    gold = [Sentence("左肺上叶结节", [Span(0, 5, "dis")])]
    record = {
        "text": "左肺上叶结节",
        "entities": [
            {"type": "dis", "start": 0, "end": 5},
            {"type": "bod", "start": 0, "end": 3},
            {"type": "sym", "start": 0, "end": 3},
            {"type": "bod", "start": 2, "end": 4},
            {"type": "bod", "start": 2, "end": 4},
        ],
    }
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(record, ensure_ascii=False) + "\n", encoding="utf-8")
    (spans,), _ = read_predictions(path, gold)
    assert spans == [Span(0, 3, "bod"), Span(0, 3, "sym"), Span(0, 5, "dis"), Span(2, 4, "bod")]
    label = {"bod": {"左肺上叶": [[0, 3]]}, "sym": {"左肺上叶": [[0, 3]]}, "dis": {"肺上叶结": [[1, 4]]}}
    path.write_text(json.dumps({"id": 0, "label": label}, ensure_ascii=False) + "\n", encoding="utf-8")
    (spans,), _ = read_predictions(path, gold)
    assert spans == [Span(0, 3, "bod"), Span(0, 3, "sym"), Span(1, 4, "dis")]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"text": "张三在北京", "entities": []}'], "p.json: 1 predictions for 3 gold sentences"),
        (
            ['{"text": "张三在北京"}'],
            re.escape("p.json:1: expected 'entities' (kner.predict --output_format=jsonl) or 'label'"),
        ),
        (['{"text": "张三", "entities": []}'], "p.json:1: text '张三' differs from the gold text at .*gold.json:1"),
        (
            ['{"text": "张三在北京", "entities": [{"type": "x", "start": 3, "end": 9}]}'],
            "p.json:1: entity \\[3, 9\\] x is outside",
        ),
        (['{"text": "张三在北京", "entities": [{"type": "x", "start": 0}]}'], "p.json:1: entity .*: expected"),
        (
            ['{"text": "张三在北京", "entities": [{"type": "x", "start": 0, "end": 1, "text": "张"}]}'],
            "is '张' but the text there is '张三'",
        ),
        (['{"id": 7, "label": {}}', '{"id": 7, "label": {}}'], "p.json:2: id 7 repeats line 1"),
        (['{"id": 8, "label": {}}'], "p.json:1: id 8 is not in the gold data"),
        (
            ['{"id": 7, "label": {}}'],
            "p.json: no prediction for 2 of 3 gold sentences, the first with id 1 \\(.*gold.json:2\\)",
        ),
        (['{"id": 7, "label": {"loc": {"北京": [[2, 3]]}}}'], "p.json:1: span \\[2, 3\\] of loc '北京' covers '在北'"),
        (['{"id": 7, "label": {"name": "张三"}}'], "p.json:1: 'label' must be"),
        (['{"id": 7, "label": {}', ""], "p.json:1: malformed JSON"),
        (["[1, 2]"], "p.json:1: expected one character before the tag"),
        (["{ O", "", "{ B-x"], "p.json:1: text .{. differs from the gold text"),  # a column file
    ],
)
def test_bad_predictions(tmp_path, gold_file, lines, message):
    path = tmp_path / "p.json"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=message):
        read_predictions(path, read_corpus(gold_file))


def test_gold_ids_must_be_unique_to_join_by_id(tmp_path):
    gold = [Sentence("甲", [], id=1, path="gold.json", line=1), Sentence("乙", [], id=1, path="gold.json", line=2)]
    path = tmp_path / "p.json"
    path.write_text('{"id": 1, "label": {}}\n', encoding="utf-8")
    with pytest.raises(InputError, match=re.escape("gold.json:2: id '1' repeats line 1")):
        read_predictions(path, gold)


def test_text_utf8_cannot_encode(tmp_path):
    gold = [Sentence("a\ufffdb", [])]
    path = tmp_path / "p.jsonl"
    path.write_text('{"text": "a\\ud800b", "entities": []}\n', encoding="utf-8")
    with pytest.raises(InputError, match="p.jsonl:1: text character 1 is a lone surrogate"):
        read_predictions(path, gold)
    assert read_predictions(path, gold, lenient=True) == ([[]], "by position")
