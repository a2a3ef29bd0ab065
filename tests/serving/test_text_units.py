"""English and mixed text through the serving graph: WordPiece in the graph,
windows over sub-tokens, entities at the labelled units, offsets into the
raw text."""

import numpy as np
import pytest
import tensorflow as tf
from shared_data import shared_file
from tagger_dirs import english_model_dir

from kner.data.wordpiece import WordPieceTokenizer
from kner.models import artifacts
from kner.serving.predictor import Predictor
from kner.serving.text_tagger import TextTagger

TEXTS = [
    "Kaitlyn flew from Tiruchirappalli to Zürich, unbelievably!",
    "",
    "我在Googleplex工作, 见到了Sundar Pichai。",
    "Émilie   and\tthe  café-owner's dog",
    # Longer than a window of 6 sub-tokens many times over.
    "The quick brown fox jumps over the lazy dog near Kilimanjaro again and again " * 3,
]


@pytest.fixture(scope="module")
def vocab():
    return shared_file("vocab/bert-base-cased-vocab.txt")


def always_b_person(model) -> None:
    """Every unit's best tag: B-person (so every unit is an entity)."""
    kernel, bias = model.classifier.weights
    kernel.assign(tf.zeros_like(kernel))
    bias.assign(tf.one_hot(model.labels.tag_to_id("B-person"), bias.shape[0]) * 5.0)


def expected_units(vocab, text: str, words: bool) -> list[str]:
    """The unit strings of `text`, in Python: each word's pieces (or each
    piece) from its first character to its last piece's end."""
    tokenizer = WordPieceTokenizer(vocab, lowercase=False)
    encoding = tokenizer.encode_with_offsets(text)
    pieces = [tokenizer.vocabulary[i] for i in encoding.ids]
    starts = [i for i, p in enumerate(pieces) if not (words and p.startswith("##"))]
    ends = [*starts[1:], len(pieces)]
    return [text[encoding.starts[a] : encoding.ends[b - 1]] for a, b in zip(starts, ends)]


@pytest.mark.parametrize("label_units", ["words", "tokens"])
def test_entities_are_the_units_and_their_offsets_slice_the_raw_text(tmp_path, vocab, label_units):
    model, model_dir = english_model_dir(tmp_path / "model", vocab, label_units=label_units)
    always_b_person(model)
    model.save_weights(str(model_dir / artifacts.WEIGHTS))
    results = Predictor.from_dir(model_dir).run(TEXTS, batch_size=2)
    for text, result in zip(TEXTS, results):
        units = expected_units(vocab, text, label_units == "words")
        assert [e.text for e in result.entities] == units
        assert all(text[e.start : e.end + 1] == e.text for e in result.entities)
        assert result.tags == ["B-person"] * len(units)
    assert len(results[-1].entities) > 6  # the windows did run
    first = [e.text for e in results[0].entities]
    if label_units == "words":
        assert first[:7] == ["Kaitlyn", "flew", "from", "Tiruchirappalli", "to", "Zürich", ","]
    else:
        assert first[:2] == ["Kai", "tly"]


def test_the_graph_answers_with_units_and_characters(tmp_path, vocab):
    model, model_dir = english_model_dir(tmp_path / "model", vocab)
    model.save_weights(str(model_dir / artifacts.WEIGHTS))
    module = TextTagger.from_model_dir(model_dir)
    out = module.predict_text(tf.constant(["Hi Zürich, ok", "我在"]))
    assert out["num_chars"].numpy().tolist() == [13, 2]
    assert out["num_units"].numpy().tolist() == [4, 2]
    np.testing.assert_array_equal(out["unit_start"].numpy(), [[0, 3, 9, 11], [0, 1, -1, -1]])
    np.testing.assert_array_equal(out["unit_end"].numpy(), [[1, 8, 9, 12], [0, 1, -1, -1]])
    assert out["tags"].shape[1] == 4


def test_a_pair_head_finds_spans_between_units_across_windows(tmp_path, vocab):
    model, model_dir = english_model_dir(
        tmp_path / "model", vocab, head="global_pointer", decode_threshold=-1e9, max_seq_length=10
    )
    model.save_weights(str(model_dir / artifacts.WEIGHTS))
    text = TEXTS[0]
    (result,) = Predictor.from_dir(model_dir).run([text])
    units = expected_units(vocab, text, words=True)
    tokenizer = WordPieceTokenizer(vocab, lowercase=False)
    encoding = tokenizer.encode_with_offsets(text)
    unit_starts = {s for s, i in zip(encoding.starts, encoding.ids) if not tokenizer.vocabulary[i].startswith("##")}
    unit_ends = {text.index(u, s) + len(u) - 1 for u, s in zip(units, sorted(unit_starts))}
    spans = {(e.start, e.end) for e in result.entities}
    assert all(text[e.start : e.end + 1] == e.text for e in result.entities)
    assert all(s in unit_starts and e in unit_ends for s, e in spans)
    # Every span of at most a window's units (8 sub-tokens), each once.
    assert len(spans) == len(result.entities) > len(units)
