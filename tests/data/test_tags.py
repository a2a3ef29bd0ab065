import json

import pytest
from shared_data import SHARED_DATA as DATA

from kner.data.spans import Span, flatten_spans
from kner.data.tags import (
    SCHEMES,
    TagError,
    detect_scheme,
    scheme_prefixes,
    spans_to_tags,
    split_tag,
    tags_to_spans,
)

SPANS = [Span(0, 0, "a"), Span(2, 4, "b"), Span(5, 6, "a-x")]
EXPECTED_TAGS = {
    "bio": ["B-a", "O", "B-b", "I-b", "I-b", "B-a-x", "I-a-x", "O"],
    "bios": ["S-a", "O", "B-b", "I-b", "I-b", "B-a-x", "I-a-x", "O"],
    "bioes": ["S-a", "O", "B-b", "I-b", "E-b", "B-a-x", "E-a-x", "O"],
    "bmes": ["S-a", "O", "B-b", "M-b", "E-b", "B-a-x", "E-a-x", "O"],
}


@pytest.mark.parametrize("scheme", SCHEMES)
def test_spans_to_tags_and_back(scheme):
    tags = spans_to_tags(SPANS, 8, scheme)
    assert tags == EXPECTED_TAGS[scheme]
    assert tags_to_spans(tags, scheme) == (SPANS, 0)
    assert detect_scheme(tags) == scheme


def test_scheme_prefix_order():
    assert scheme_prefixes("bio") == ("B", "I")
    assert scheme_prefixes("bios") == ("B", "I", "S")
    assert scheme_prefixes("bioes") == ("B", "I", "E", "S")
    assert scheme_prefixes("bmes") == ("B", "M", "E", "S")


def test_split_tag_on_first_dash_only():
    assert split_tag("B-foo-bar", "bio") == ("B", "foo-bar")
    assert split_tag("O", "bmes") == ("O", None)


@pytest.mark.parametrize(
    "tags, scheme",
    [
        (["O", "B-x", "I-x"], "bio"),
        ([], "bio"),
        (["S-x", "B-y", "I-y"], "bios"),
        (["B-x", "E-x", "S-x"], "bioes"),
        (["B-x", "M-x", "E-x"], "bmes"),
        (["B-x", "E-x", "M-x"], "bmes"),
        (["M-x", "E-x", "S-x", "I-x"], "bmes"),
    ],
)
def test_detect_scheme(tags, scheme):
    assert detect_scheme(tags) == scheme


def test_spans_to_tags_drops_nested_and_checks_bounds():
    nested = [Span(0, 3, "book"), Span(1, 2, "company")]
    assert spans_to_tags(nested, 4, "bio") == ["B-book"] + ["I-book"] * 3
    with pytest.raises(ValueError, match="outside"):
        spans_to_tags([Span(2, 4, "a")], 4, "bio")


# (tags, scheme, position of the strict error, part of its message,
#  spans and repair count of the lenient reading)
INVALID = [
    (["O", "I-x", "I-x"], "bio", 1, "continues no entity", [Span(1, 2, "x")], 1),
    (
        ["B-x", "I-y", "I-y"],
        "bio",
        1,
        "type changes",
        [Span(0, 0, "x"), Span(1, 2, "y")],
        1,
    ),
    (["B-x", "O"], "bios", 1, "one-character entity is S-x", [Span(0, 0, "x")], 1),
    (["B-x"], "bios", 0, "ends the sentence", [Span(0, 0, "x")], 1),
    (["B-x", "I-x", "O"], "bioes", 2, "not closed with E-x", [Span(0, 1, "x")], 1),
    (["B-x", "I-x"], "bioes", 1, "ends the sentence", [Span(0, 1, "x")], 1),
    (["O", "E-x"], "bioes", 1, "continues no entity", [Span(1, 1, "x")], 1),
    (["I-x", "E-x"], "bioes", 0, "continues no entity", [Span(0, 1, "x")], 1),
    (
        ["B-x", "M-y", "E-y"],
        "bmes",
        1,
        "type changes",
        [Span(0, 0, "x"), Span(1, 2, "y")],
        1,
    ),
    (
        ["B-x", "B-y", "E-y"],
        "bmes",
        1,
        "not closed with E-x",
        [Span(0, 0, "x"), Span(1, 2, "y")],
        1,
    ),
]


@pytest.mark.parametrize("tags, scheme, position, message, spans, repairs", INVALID)
def test_invalid_sequences(tags, scheme, position, message, spans, repairs):
    with pytest.raises(TagError, match=message) as caught:
        tags_to_spans(tags, scheme)
    assert caught.value.position == position
    assert tags_to_spans(tags, scheme, strict=False) == (spans, repairs)


@pytest.mark.parametrize(
    "tag, scheme, message",
    [
        ("E-x", "bio", "unknown tag prefix 'E'"),
        ("I-x", "bmes", "unknown tag prefix 'I'"),
        ("X-x", "bioes", "unknown tag prefix 'X'"),
        ("B", "bio", "no entity type"),
        ("B-", "bio", "no entity type"),
        ("O-x", "bio", "O takes no entity type"),
        ("o", "bio", "unknown tag prefix 'o'"),
    ],
)
def test_unknown_tags_fail_even_when_lenient(tag, scheme, message):
    for strict in (True, False):
        with pytest.raises(TagError, match=message) as caught:
            tags_to_spans(["O", tag], scheme, strict=strict)
        assert caught.value.position == 1


def test_unknown_scheme():
    with pytest.raises(ValueError, match="unknown tag scheme"):
        spans_to_tags([], 3, "iob1")


@pytest.mark.parametrize("scheme", SCHEMES)
def test_cluener_round_trip(scheme):
    """Every CLUENER train and dev sentence survives spans -> tags -> spans;
    the one train sentence with nested entities keeps its outer entity."""
    paths = [DATA / "cluener" / name for name in ("train.json", "dev.json")]
    if not all(path.exists() for path in paths):
        pytest.skip(f"CLUENER data not found under {DATA / 'cluener'}")
    sentences = 0
    changed = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            spans = sorted(
                Span(start, end, entity_type)
                for entity_type, entities in record["label"].items()
                for positions in entities.values()
                for start, end in positions
            )
            tags = spans_to_tags(spans, len(record["text"]), scheme)
            decoded, repairs = tags_to_spans(tags, scheme)
            assert repairs == 0
            if decoded != spans:
                assert decoded == flatten_spans(spans)[0]
                changed.append(record["text"])
            sentences += 1
    assert sentences == 12091
    assert len(changed) == 1 and "《招商银行：投资永隆银行浮亏逾百亿港元》" in changed[0]
