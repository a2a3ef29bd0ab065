import unicodedata

import pytest

from kner.data.basic_tokenizer import SCANNED, char_tables, is_cjk, is_punctuation, normal_forms, split_words

ALL = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]


@pytest.fixture(scope="module", params=[False, True], ids=["cased", "lowercase"])
def tables(request):
    return char_tables(request.param)


def test_unscanned_code_points_map_to_themselves_and_split_nothing():
    scanned = {c for codes in SCANNED for c in codes}
    rest = [c for c in ALL if ord(c) not in scanned]
    assert len(rest) > 900_000
    assert normal_forms(rest, lowercase=True) == rest
    assert not any(is_punctuation(c) for c in rest)
    assert {unicodedata.category(c) for c in rest} <= {"Lo", "Cn", "Co"}


def test_joined_normal_forms_equal_one_character_at_a_time():
    chars = ALL[1:0x20000]
    expected = [
        "".join(m for m in unicodedata.normalize("NFD", c.lower()) if unicodedata.category(m) != "Mn") for c in chars
    ]
    assert normal_forms(chars, lowercase=True) == expected


def test_google_cleaning(tables):
    assert tables.normalise("\x00") == tables.normalise("\ufffd") == tables.normalise("\u200b") == ""
    assert tables.normalise("\x0b") == tables.normalise("\x85") == ""  # Cc, though whitespace to Python
    for char in " \t\n\r\u3000\u00a0\u2028\u2029":
        assert tables.normalise(char) == " "
    assert tables.normalise("\u0301") == ("" if tables.lowercase else "\u0301")
    assert tables.normalise("É") == ("e" if tables.lowercase else "É")
    assert tables.normalise("\u1fef") == ("`" if tables.lowercase else "\u1fef")  # becomes punctuation


def test_normalising_never_makes_or_unmakes_a_break_or_a_cjk_character(tables):
    for char, form in tables.replacements.items():
        if form in ("", " "):
            continue
        assert " " not in form and not any(c.isspace() for c in form), hex(ord(char))
        assert all(is_cjk(ord(c)) == is_cjk(ord(char)) for c in form), hex(ord(char))
        assert not is_cjk(ord(char)) or len(form) == 1


def test_split_words_keeps_where_each_character_came_from():
    words = split_words("Héllo,\u200b 世界! naïve", char_tables(True))
    assert words == [("hello", [0, 1, 2, 3, 4]), (",", [5]), ("世", [8]), ("界", [9]), ("!", [10]),
                     ("naive", [12, 13, 14, 15, 16])]  # fmt: skip
    assert split_words("Straße İ", char_tables(True)) == [("straße", [0, 1, 2, 3, 4, 5]), ("i", [7])]
    assert split_words("", char_tables(False)) == []
