import pytest
import tensorflow as tf
from shared_data import shared_file

from kner.data.spans import Span
from kner.data.tokenizer import CharTokenizer
from kner.data.units import TokenUnits, WordUnits, make_units, to_char_spans, to_unit_spans, unit_offsets
from kner.data.wordpiece import WordPieceTokenizer

TEXTS = ["Hello Zürich, unbelievably!", "", "我在Googleplex工作 ok"]


@pytest.fixture(scope="module")
def cased():
    return WordPieceTokenizer(shared_file("vocab/bert-base-cased-vocab.txt"), lowercase=False)


def units_of(tokenizer, units, texts=TEXTS):
    tokens = tokenizer.tokenize(tf.constant(texts))
    is_unit = units.starts(tokens, tokenizer)
    start, end = unit_offsets(tokens, is_unit)
    return tokens, is_unit, start.to_list(), end.to_list()


def test_word_units_are_the_first_sub_token_of_each_word_and_cover_the_word(cased):
    tokens, is_unit, starts, ends = units_of(cased, WordUnits())
    pieces = [[cased.vocabulary[i] for i in row] for row in tokens.ids.to_list()]
    assert any(p.startswith("##") for row in pieces for p in row)  # the words do split
    for row, flags in zip(pieces, is_unit.to_list()):
        assert flags == [not p.startswith("##") for p in row]
    words = [
        [text[s:e] for s, e in zip(row_starts, row_ends)] for text, row_starts, row_ends in zip(TEXTS, starts, ends)
    ]
    assert words == [
        ["Hello", "Zürich", ",", "unbelievably", "!"],
        [],
        ["我", "在", "Googleplex", "工", "作", "ok"],
    ]


def test_token_units_are_every_token(cased):
    tokens, is_unit, starts, ends = units_of(cased, TokenUnits())
    assert all(all(row) for row in is_unit.to_list())
    assert starts == tokens.starts.to_list() and ends == tokens.ends.to_list()


def test_one_token_per_character_has_one_unit_per_character_either_way():
    tokenizer = CharTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "上", "海", "##海"])
    for units in (TokenUnits(), WordUnits()):
        _, _, starts, ends = units_of(tokenizer, units, ["上海 x", ""])
        assert starts == [[0, 1, 2, 3], []] and ends == [[1, 2, 3, 4], []]


def test_spans_move_to_unit_boundaries_and_are_counted():
    # Units: "New" [0, 3), "##ark" [3, 6), "Jersey" [7, 13); a gap at 6.
    start, end = [0, 3, 7], [3, 6, 13]
    spans = [Span(0, 5, "a"), Span(1, 4, "b"), Span(7, 12, "c"), Span(6, 6, "d")]
    unit_spans, moved, lost = to_unit_spans(spans, start, end)
    assert unit_spans == [Span(0, 1, "a"), Span(0, 1, "b"), Span(2, 2, "c")]
    assert (moved, lost) == (1, 1)
    assert to_char_spans(unit_spans, start, end) == [Span(0, 5, "a"), Span(0, 5, "b"), Span(7, 12, "c")]


def test_units_by_name():
    assert isinstance(make_units("words"), WordUnits) and isinstance(make_units("tokens"), TokenUnits)
    with pytest.raises(ValueError, match="tokens, words"):
        make_units("chars")
