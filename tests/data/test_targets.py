"""The span head's targets: start and end labels per character."""

import numpy as np
from tagger_dirs import toy_vocabulary

from kner.data.corpus import Sentence
from kner.data.pipeline import batched, encode
from kner.data.spans import Span
from kner.data.targets import PointerTargets
from kner.data.tokenizer import CharTokenizer

TARGETS = PointerTargets(["loc", "name"])


def test_each_span_marks_its_start_and_its_end_with_its_type_plus_one():
    encoded = TARGETS.encode([Span(0, 1, "name"), Span(3, 3, "loc")], 5, 5)
    assert encoded == {"start_ids": [2, 0, 0, 1, 0], "end_ids": [0, 2, 0, 1, 0]}


def test_nested_spans_keep_the_outer_one_and_a_cut_entity_is_dropped_whole():
    nested = [Span(0, 4, "loc"), Span(1, 2, "name")]
    assert TARGETS.encode(nested, 5, 5) == {"start_ids": [1, 0, 0, 0, 0], "end_ids": [0, 0, 0, 0, 1]}
    cut = [Span(0, 1, "name"), Span(2, 4, "loc")]
    assert TARGETS.encode(cut, 5, 3) == {"start_ids": [2, 0, 0], "end_ids": [0, 2, 0]}


def test_batches_carry_both_columns_at_the_characters():
    tokenizer = CharTokenizer(toy_vocabulary())
    sentences = [
        Sentence("张三在北京", [Span(0, 1, "name"), Span(3, 4, "loc")]),
        Sentence("王五", [Span(0, 1, "name")]),
    ]
    batch = next(iter(batched(encode(sentences, tokenizer, TARGETS), tokenizer, 2)))
    # [CLS] chars [SEP]: the heads read the 6 positions after [CLS].
    assert batch["token_ids"].shape == (2, 7)
    np.testing.assert_array_equal(batch["start_ids"], [[2, 0, 0, 1, 0, 0], [2, 0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(batch["end_ids"], [[0, 2, 0, 0, 1, 0], [0, 2, 0, 0, 0, 0]])
