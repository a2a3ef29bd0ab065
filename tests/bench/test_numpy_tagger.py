"""bench/numpy_tagger.py, the ONNX Runtime side's decoding and the same-entities
check of bench/ort_serving.py, against kner's own decoding and serving graph
(no onnxruntime needed: the kner model's logits stand in for the session's)."""

import random
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tagger_dirs import toy_sentence
from viterbi_reference import stepwise_viterbi

# Appended, not prepended: bench/ holds module names that tests/ also has (wordpiece_reference).
sys.path.append(str(Path(__file__).resolve().parents[2] / "bench"))

from numpy_tagger import (  # noqa: E402  (bench/ is not a package)
    Decoder,
    SameEntitiesError,
    check_same_entities,
    encode_batch,
    serving_entities,
    viterbi,
)
from ort_side import write_huggingface  # noqa: E402

from kner.data.labels import LabelVocab  # noqa: E402
from kner.models.artifacts import load_tagger  # noqa: E402
from kner.models.crf import constraint_scores  # noqa: E402
from kner.models.crf import viterbi as kner_viterbi  # noqa: E402


def test_viterbi_gives_kner_viterbi_tags_ties_included():
    labels = LabelVocab.from_types(["loc", "name"], "bios")
    penalties = constraint_scores(labels.tags, labels.scheme)
    rng = np.random.default_rng(0)
    num_tags = len(labels)
    transitions, start, end = (p + rng.integers(-2, 3, p.shape).astype(np.float32) for p in penalties)
    lengths = np.array([0, 1, 5, 19, 20, 12])
    potentials = rng.integers(-3, 4, (len(lengths), 20, num_tags)).astype(np.float32)  # many ties
    got = viterbi(potentials, lengths, transitions, start, end)
    want, _ = stepwise_viterbi(potentials, lengths, transitions, start, end)
    np.testing.assert_array_equal(got, want)
    mask = np.arange(20)[None] < lengths[:, None]
    tags, _ = kner_viterbi(potentials, mask, lengths.astype(np.int32), transitions, start, end)
    np.testing.assert_array_equal(got, tags.numpy())


def short_texts(count: int, limit: int) -> list[str]:
    rng = random.Random(5)
    texts = []
    while len(texts) < count:
        text = toy_sentence(rng).text
        if 0 < len(text) <= limit:
            texts.append(text)
    return texts


def test_the_numpy_side_returns_the_exports_entities_and_the_check_fails_when_a_side_differs(
    model_dir, export_dir, tmp_path
):
    model, tokenizer, settings = load_tagger(model_dir)
    texts = short_texts(12, settings["max_seq_length"] - 2)
    signature = tf.saved_model.load(str(export_dir / "1")).signatures["serving_default"]
    exported = serving_entities({k: v.numpy() for k, v in signature(text=tf.constant(texts)).items()})

    decoder = Decoder.from_huggingface_dir(write_huggingface(model_dir, tmp_path / "hf"))
    batch = encode_batch(tokenizer, texts, settings["max_seq_length"])
    # kner scores the positions after [CLS]; the decoder reads logits laid out as BertForTokenClassification's.
    logits = np.pad(model(batch.kner_features()).numpy(), [(0, 0), (1, 0), (0, 0)])
    assert check_same_entities(texts, exported, decoder.entities(texts, logits, batch.lengths)) >= 6

    # One side's scores moved: the first text with an entity loses it (every character scored `O`).
    row = next(i for i, found in enumerate(exported) if found)
    moved = logits.copy()
    moved[row, :, decoder.labels.tags.index("O")] += 100.0
    with pytest.raises(SameEntitiesError, match=rf"different entities for 1 of 12 texts:\n  text {row} "):
        check_same_entities(texts, exported, decoder.entities(texts, moved, batch.lengths))
    with pytest.raises(SameEntitiesError, match="12 texts, but 12 and 11 results"):
        check_same_entities(texts, exported, exported[:-1])
    # A text the caller showed to be a float32 tie is not held against the sides.
    assert check_same_entities(texts, exported, decoder.entities(texts, moved, batch.lengths), ties={row}) >= 5


def test_score_gaps_are_zero_on_the_decoders_path_and_the_score_lost_elsewhere(model_dir, tmp_path):
    model, tokenizer, settings = load_tagger(model_dir)
    texts = short_texts(6, settings["max_seq_length"] - 2)
    decoder = Decoder.from_huggingface_dir(write_huggingface(model_dir, tmp_path / "hf"))
    batch = encode_batch(tokenizer, texts, settings["max_seq_length"])
    logits = np.pad(model(batch.kner_features()).numpy(), [(0, 0), (1, 0), (0, 0)])
    best = decoder.tag_ids(logits, batch.lengths)
    np.testing.assert_allclose(decoder.score_gaps(logits, batch.lengths, best), 0.0, atol=1e-9)

    other = best.copy()
    other[0, 0] = (best[0, 0] + 1) % len(decoder.labels)  # another first tag
    scores = logits[:1, 1:].astype(np.float64)
    transitions, start = decoder.transitions, decoder.start
    lost = scores[0, 0, best[0, 0]] - scores[0, 0, other[0, 0]] + start[best[0, 0]] - start[other[0, 0]]
    if batch.lengths[0] > 1:
        lost += transitions[best[0, 0], best[0, 1]] - transitions[other[0, 0], best[0, 1]]
    else:
        lost += decoder.end[best[0, 0]] - decoder.end[other[0, 0]]
    gaps = decoder.score_gaps(logits, batch.lengths, other)
    assert gaps[0] > 0 and gaps[0] == pytest.approx(lost, rel=1e-5)
    np.testing.assert_allclose(gaps[1:], 0.0, atol=1e-9)


def test_encode_batch_refuses_a_text_longer_than_a_window(model_dir):
    _, tokenizer, _ = load_tagger(model_dir)
    batch = encode_batch(tokenizer, ["北京", "张三在上海"], max_seq_length=8)
    assert batch.input_ids.shape == (2, 7)
    assert batch.input_ids[0, :4].tolist() == [tokenizer.cls_id, *tokenizer.encode("北京"), tokenizer.sep_id]
    assert batch.attention_mask.sum(axis=1).tolist() == [4, 7]
    with pytest.raises(ValueError, match="text 1 of the batch has 7 characters; the ONNX Runtime side takes at most 6"):
        encode_batch(tokenizer, ["北京", "张三在上海杭州"], max_seq_length=8)
