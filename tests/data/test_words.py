import pytest

from kner.data.spans import Span
from kner.data.words import char_spans, join_words, word_spans


def test_words_join_with_one_space_and_spans_map_both_ways():
    text, words = join_words(["Empire", "State", "Building", "=", "ESB"])
    assert text == "Empire State Building = ESB"
    assert [text[a:b] for a, b in words] == ["Empire", "State", "Building", "=", "ESB"]
    by_word = [Span(0, 2, "location"), Span(4, 4, "location")]
    by_char = char_spans(by_word, words)
    assert [text[s.start : s.end + 1] for s in by_char] == ["Empire State Building", "ESB"]
    assert word_spans(by_char, words) == by_word


@pytest.mark.parametrize("span", [Span(1, 5, "x"), Span(0, 4, "x"), Span(7, 8, "x"), Span(6, 11, "x")])
def test_spans_off_word_boundaries_are_refused(span):
    _, words = join_words(["Empire", "State"])
    with pytest.raises(ValueError, match="does not fall on word boundaries"):
        word_spans([span], words)


def test_empty_sentence():
    assert join_words([]) == ("", [])
