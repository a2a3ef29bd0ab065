import random

import numpy as np
import pytest
import tagger_dirs
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from tagger_dirs import NAMES, PLACES, cached_model_dir, toy_nested_sentence, toy_sentence
from test_windows import reference_owner, reference_starts
from viterbi_reference import stepwise_viterbi

from kner.data.labels import LabelVocab
from kner.data.pipeline import to_features
from kner.data.spans import Span
from kner.data.tags import SCHEMES
from kner.models.artifacts import load_tagger
from kner.models.crf import FORWARD_UNROLL
from kner.models.heads.tags import span_bounds, tag_roles
from kner.serving.text_tagger import CHUNK_WORK, TextTagger


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
    return tagger_dirs.toy_dir(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def toy(toy_dir):
    return load_tagger(toy_dir)


@pytest.fixture(scope="module")
def windowed(toy):
    model, tokenizer, settings = toy
    return TextTagger(model, tokenizer, settings["max_seq_length"])


def outputs(module: TextTagger, texts: list[str]) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in module.predict_text(tf.constant(texts, tf.string)).items()}


def spans_of(out: dict, row: int) -> list[Span]:
    count = out["num_entities"][row]
    return [
        Span(int(s), int(e), t.decode())
        for s, e, t in zip(out["entity_start"][row, :count], out["entity_end"][row, :count], out["entity_type"][row])
    ]


# Span reading in the graph is LabelVocab.decode (lenient), for every scheme.


def bounds_to_spans(tag_ids: list[int], labels: LabelVocab) -> list[Span]:
    roles, types, names = tag_roles(labels.tags, labels.scheme)
    starts, ends = span_bounds(tf.constant([tag_ids], tf.int32), tf.constant(roles), tf.constant(types))
    starts, ends = np.flatnonzero(starts.numpy()[0]), np.flatnonzero(ends.numpy()[0])
    assert len(starts) == len(ends)
    return [Span(int(s), int(e), names[types[tag_ids[s]]]) for s, e in zip(starts, ends)]


@pytest.mark.parametrize("scheme", SCHEMES)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_span_bounds_match_lenient_decode(scheme, data):
    labels = LabelVocab.from_types(["a", "b-c"], scheme)
    ids = data.draw(st.lists(st.integers(0, len(labels) - 1), max_size=12))
    assert bounds_to_spans(ids, labels) == labels.decode(ids)[0]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_span_bounds_on_a_padded_batch(scheme):
    labels = LabelVocab.from_types(["a", "b"], scheme)
    rng = np.random.default_rng(len(scheme))
    lengths = rng.integers(0, 20, size=200)
    batch = np.zeros([200, 20], np.int32)
    for row, n in enumerate(lengths):
        batch[row, :n] = rng.integers(0, len(labels), size=n)
    roles, types, _ = tag_roles(labels.tags, labels.scheme)
    starts, ends = span_bounds(tf.constant(batch), tf.constant(roles), tf.constant(types))
    for row, n in enumerate(lengths):
        expected = labels.decode(batch[row, :n])[0]
        assert np.flatnonzero(starts[row]).tolist() == [s.start for s in expected]
        assert np.flatnonzero(ends[row]).tolist() == [s.end for s in expected]


def test_tag_roles_cover_every_scheme_letter():
    roles, types, names = tag_roles(LabelVocab.from_types(["x", "y"], "bmes").tags, "bmes")
    assert names == ["x", "y"]
    assert roles.tolist() == [0, 1, 2, 3, 4, 1, 2, 3, 4]  # O, B, M, E, S per type
    assert types.tolist() == [-1, 0, 0, 0, 0, 1, 1, 1, 1]


# The module on texts that fit one window: what the Python stack gives.


def test_short_texts_match_the_python_pipeline(toy, windowed):
    model, tokenizer, _ = toy
    rng = random.Random(3)
    texts = ["", "张三", "在北京的李小四", "a张三 ０"] + [toy_sentence(rng, 1).text[:14] for _ in range(8)]
    out = outputs(windowed, texts)
    batch = to_features({"text": tf.constant(texts)}, tokenizer)
    tag_ids = model.decode(batch, model(batch)).tag_ids.numpy()
    for row, text in enumerate(texts):
        ids = tag_ids[row, : len(text)]
        assert out["num_chars"][row] == len(text)
        assert [t.decode() for t in out["tags"][row, : len(text)]] == [model.labels.tags[i] for i in ids]
        assert not any(out["tags"][row, len(text) :])
        assert spans_of(out, row) == model.labels.decode(ids)[0]
        for k, span in enumerate(spans_of(out, row)):
            assert out["entity_text"][row, k].decode() == text[span.start : span.end + 1]
            assert 0 < out["entity_score"][row, k] <= 1
    assert spans_of(out, 1) == [Span(0, 1, "name")]  # it learned
    assert spans_of(out, 2) == [Span(1, 2, "loc"), Span(4, 6, "name")]


def test_served_tags_are_the_stepwise_viterbi_path(toy):
    """Texts around the CRF's forward blocks (1, 2, FORWARD_UNROLL, one and
    two blocks and a character, up to a full window) in one request: the
    served tags are the step-by-step Viterbi path over each text's own
    emission scores, under the CRF's transitions and the scheme's
    constraints."""
    model, tokenizer, _ = toy
    module = TextTagger(model, tokenizer, max_seq_length=64)  # one window each
    rng = random.Random(5)
    lengths = [1, 2, FORWARD_UNROLL, FORWARD_UNROLL + 1, 2 * FORWARD_UNROLL + 1, 40, 62]
    texts = ["".join(toy_sentence(rng, 3).text for _ in range(9))[:n] for n in lengths]
    out = outputs(module, texts)
    crf = model.crf
    trans = crf.transitions.numpy() + crf._transition_penalty
    start = crf.start_transitions.numpy() + crf._start_penalty
    end = crf.end_transitions.numpy() + crf._end_penalty
    scores = model(to_features({"text": tf.constant(texts)}, tokenizer)).numpy()
    expected, _ = stepwise_viterbi(scores, [len(text) for text in texts], trans, start, end)
    for row, text in enumerate(texts):
        n = len(text)
        assert [t.decode() for t in out["tags"][row, :n]] == [model.labels.tags[i] for i in expected[row, :n]]


def test_chunks_are_sized_by_the_backbones_width(toy, windowed):
    model, tokenizer, settings = toy
    assert windowed.chunk_tokens == CHUNK_WORK // model.backbone.hidden_dim
    assert TextTagger(model, tokenizer, settings["max_seq_length"], chunk_tokens=40).chunk_tokens == 40


@pytest.mark.parametrize("count", [1, 2, 3, 9])
def test_requests_of_one_chunk_and_of_more_find_the_same_entities(toy, count):
    """A request within `chunk_tokens` positions (here 40: two windows of
    up to 20 tokens) runs as one chunk in request order, a bigger one in
    sorted chunks (kner.serving.length_chunks): each text's outputs equal
    those of the text sent alone."""
    model, tokenizer, _ = toy
    module = TextTagger(model, tokenizer, max_seq_length=20, chunk_tokens=40)
    rng = random.Random(count)
    texts = [toy_sentence(rng, 2).text[: rng.randint(1, module.window)] for _ in range(count)]
    together = outputs(module, texts)
    for row, text in enumerate(texts):
        alone = outputs(module, [text])
        n, k = len(text), alone["num_entities"][0]
        assert together["tags"][row, :n].tolist() == alone["tags"][0, :n].tolist()
        assert together["num_entities"][row] == k
        for key in ("entity_type", "entity_start", "entity_end", "entity_text"):
            assert together[key][row, :k].tolist() == alone[key][0, :k].tolist(), key
        np.testing.assert_allclose(together["entity_score"][row, :k], alone["entity_score"][0, :k], rtol=1e-5)


def test_entity_score_is_mean_probability_of_chosen_tags(toy, windowed):
    model, tokenizer, _ = toy
    text = "的张三是"
    out = outputs(windowed, [text])
    scores = model(to_features({"text": tf.constant([text])}, tokenizer))
    probabilities = tf.nn.softmax(scores[0, 1:3]).numpy()
    chosen = [model.labels.tag_to_id(t.decode()) for t in out["tags"][0, 1:3]]
    assert out["entity_score"][0, 0] == pytest.approx(np.mean(probabilities[[0, 1], chosen]), rel=1e-5)


def test_predict_ids_matches_predict_text(toy, windowed):
    _, tokenizer, _ = toy
    texts = ["张三在北京", "", "上海市的王五"]
    batch = to_features({"text": tf.constant(texts)}, tokenizer)
    by_ids = windowed.predict_ids(batch["token_ids"], tf.cast(batch["padding_mask"], tf.int32), batch["segment_ids"])
    by_text = outputs(windowed, texts)
    for row, text in enumerate(texts):
        n = len(text)
        assert by_ids["tags"][row, 1 : n + 1].numpy().tolist() == by_text["tags"][row, :n].tolist()
        assert not by_ids["tags"][row, 0].numpy() and not by_ids["tags"][row, n + 1 :].numpy().any()


def test_empty_batch(windowed):
    out = outputs(windowed, [])
    assert out["tags"].shape[0] == 0 and out["num_entities"].shape == (0,)


def test_batch_of_empty_texts(windowed):
    """No characters at all: decoding still has a (padding) position to run
    on, and every output is empty."""
    out = outputs(windowed, ["", ""])
    assert out["tags"].shape == (2, 0) and out["num_chars"].tolist() == [0, 0]
    assert out["num_entities"].tolist() == [0, 0] and out["entity_text"].shape == (2, 0)


# Long texts: windows merged = one pass over the whole text.


def long_text(rng: random.Random, length: int, window: int) -> tuple[str, list[Span]]:
    """Toy sentences up to `length` characters, with an entity across every
    multiple of the window's half (where window edges fall)."""
    text, spans = "", []
    while len(text) < length:
        boundary = (len(text) // (window // 2) + 1) * (window // 2)
        entity_type, entity = rng.choice([("name", n) for n in NAMES] + [("loc", p) for p in PLACES])
        filler = "的是在了有和这中大为个我以"
        text += "".join(rng.choices(filler, k=max(boundary - len(text) - 1, 0)))
        spans.append(Span(len(text), len(text) + len(entity) - 1, entity_type))
        text += entity + rng.choice(filler)
    return text, spans


def test_long_text_equals_one_pass_over_the_whole_text(toy, windowed):
    model, tokenizer, _ = toy
    rng = random.Random(7)
    texts = [long_text(rng, n, windowed.window) for n in (2_100, 15, 40)]
    whole = TextTagger(model, tokenizer, max_seq_length=2_200)  # no windows
    got = outputs(windowed, [t for t, _ in texts])
    expected = outputs(whole, [t for t, _ in texts])
    assert got["num_chars"][0] >= 2_100
    for key in ("tags", "num_chars", "entity_type", "entity_start", "entity_end", "entity_text", "num_entities"):
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    np.testing.assert_allclose(got["entity_score"], expected["entity_score"], rtol=1e-5)
    for row, (_, gold) in enumerate(texts):
        # Entities straddle window edges, and come out whole.
        assert spans_of(got, row) == gold


def test_windows_with_attention_match_a_python_merge(tmp_path_factory):
    """A real (attending, random) 2-layer tagger: the graph's windows, merge
    and decoding equal running each window's text alone and merging the
    scores in Python by the documented rule."""
    model_dir = cached_model_dir(tmp_path_factory.getbasetemp(), "attention", scheme="bioes", layers=2, seed=1)
    model, tokenizer, _ = load_tagger(model_dir)
    window, stride = 8, 3
    module = TextTagger(model, tokenizer, window + 2, stride)
    rng = random.Random(0)
    texts = ["".join(rng.choices("张三李小四王五北京上海市杭州的是在了a1 ", k=n)) for n in (0, 5, 8, 9, 23, 60)]
    out = outputs(module, texts)
    for row, text in enumerate(texts):
        n = len(text)
        starts = reference_starts(n, window, stride)
        pieces = [text[s : s + window] for s in starts]
        scores = model(to_features({"text": tf.constant(pieces)}, tokenizer)).numpy()
        merged = np.zeros([n + 1, len(model.labels)], np.float32)
        for i in range(n):
            k = reference_owner(i, n, starts, window)
            merged[i] = scores[k, i - starts[k]]
        mask = tf.sequence_mask([n + 2], n + 2)
        ids = model.decode({"padding_mask": mask}, tf.constant(merged[None])).tag_ids[0, :n].numpy()
        assert [t.decode() for t in out["tags"][row, :n]] == [model.labels.tags[i] for i in ids]
        assert spans_of(out, row) == model.labels.decode(ids)[0]


def test_window_settings_are_validated(toy):
    model, tokenizer, _ = toy
    with pytest.raises(ValueError, match="max_seq_length"):
        TextTagger(model, tokenizer, 5_000)
    with pytest.raises(ValueError, match="window_stride"):
        TextTagger(model, tokenizer, 16, window_stride=15)
    with pytest.raises(ValueError, match="chunk_tokens"):
        TextTagger(model, tokenizer, 16, chunk_tokens=0)


# Pair heads (GlobalPointer): each window decodes, spans merge by the windows' rule.


@pytest.fixture(scope="module", params=["global_pointer", "efficient_global_pointer"])
def pair_toy(request, tmp_path_factory):
    return load_tagger(tagger_dirs.toy_dir(tmp_path_factory.getbasetemp(), request.param))


def nested_long_text(rng: random.Random, length: int) -> tuple[str, list[Span]]:
    text, spans = "", []
    while len(text) < length:
        sentence = toy_nested_sentence(rng, 3)
        spans += [Span(s.start + len(text), s.end + len(text), s.type) for s in sentence.spans]
        text += sentence.text
    return text, spans


def test_pair_head_windows_find_each_span_of_any_window_once(pair_toy):
    """A position-wise model scores a span the same in every window that holds
    it, so the windowed graph must find exactly the spans found in the
    windows' texts sent alone, each once (none longer than a window: one
    pass over the whole text would score spans no window holds), nested
    ones and those across window edges included."""
    model, tokenizer, settings = pair_toy
    module = TextTagger(model, tokenizer, settings["max_seq_length"])
    rng = random.Random(9)
    texts = [nested_long_text(rng, n) for n in (600, 30, 9)]
    got = outputs(module, [t for t, _ in texts])
    assert not got["tags"].any()  # "" everywhere: a pair head tags no sequence
    for row, (text, gold) in enumerate(texts):
        starts = reference_starts(len(text), module.window, module.stride)
        alone = outputs(module, [text[s : s + module.window] for s in starts])
        expected = {Span(e.start + s, e.end + s, e.type) for k, s in enumerate(starts) for e in spans_of(alone, k)}
        found = spans_of(got, row)
        assert found == sorted(expected, key=lambda e: (e.start, e.end, e.type))
        assert len(set(found) & set(gold)) > 0.95 * len(gold)
    found, starts = spans_of(got, 0), reference_starts(len(texts[0][0]), module.window, module.stride)
    assert any(Span(s.start, s.end - 2, "loc") in found for s in found if s.type == "org")  # the place in 北京大学
    across = [s for s in found if any(b <= s.start <= b + module.window - 1 < s.end for b in starts)]
    assert across and len(set(across)) == len(across)


def test_pair_head_flat_decoding_keeps_the_best_non_overlapping_spans(pair_toy):
    model, tokenizer, settings = pair_toy
    nested = outputs(TextTagger(model, tokenizer, settings["max_seq_length"]), ["在北京大学和上海市大学的张三"])
    model.head.decoding = "flat"
    try:
        flat = outputs(TextTagger(model, tokenizer, settings["max_seq_length"]), ["在北京大学和上海市大学的张三"])
    finally:
        model.head.decoding = "nested"
    assert spans_of(nested, 0) == [
        Span(1, 2, "loc"), Span(1, 4, "org"), Span(6, 8, "loc"), Span(6, 10, "org"), Span(12, 13, "name")
    ]  # fmt: skip
    kept = spans_of(flat, 0)
    assert set(kept) < set(spans_of(nested, 0)) and kept[-1] == Span(12, 13, "name")
    assert all(a.end < b.start for a, b in zip(kept, kept[1:]))


def test_pair_head_predict_ids_returns_entities_at_character_offsets(pair_toy):
    model, tokenizer, settings = pair_toy
    module = TextTagger(model, tokenizer, settings["max_seq_length"])
    texts = ["在北京大学", "", "张三"]
    batch = to_features({"text": tf.constant(texts)}, tokenizer)
    by_ids = module.predict_ids(batch["token_ids"], tf.cast(batch["padding_mask"], tf.int32), batch["segment_ids"])
    by_text = outputs(module, texts)
    assert "tags" not in by_ids
    for key in ("entity_type", "entity_start", "entity_end", "num_entities"):
        np.testing.assert_array_equal(by_ids[key].numpy(), by_text[key], err_msg=key)
    np.testing.assert_allclose(by_ids["entity_score"], by_text["entity_score"], rtol=1e-5)


# The span head: per-position start and end logits, merged like tag scores.


@pytest.fixture(scope="module")
def span_toy(tmp_path_factory):
    return load_tagger(tagger_dirs.toy_dir(tmp_path_factory.getbasetemp(), "span"))


def test_span_head_windows_equal_one_pass_over_the_whole_text(span_toy):
    """Position-wise logits: the windows' merged start and end logits are the
    whole text's, so entities across window edges (and ends several windows
    after their start) come out as one pass finds them."""
    model, tokenizer, settings = span_toy
    windowed = TextTagger(model, tokenizer, settings["max_seq_length"])
    rng = random.Random(7)
    texts = [long_text(rng, n, windowed.window) for n in (2_100, 15, 40)]
    got = outputs(windowed, [t for t, _ in texts])
    expected = outputs(TextTagger(model, tokenizer, max_seq_length=2_200), [t for t, _ in texts])
    assert not got["tags"].any()  # "" everywhere: the span head tags no sequence
    for key in ("num_chars", "entity_type", "entity_start", "entity_end", "entity_text", "num_entities"):
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    np.testing.assert_allclose(got["entity_score"], expected["entity_score"], rtol=1e-5)
    for row, (_, gold) in enumerate(texts):
        assert len(set(spans_of(got, row)) & set(gold)) > 0.95 * len(gold)


def test_span_head_predict_ids_returns_entities_at_character_offsets(span_toy):
    model, tokenizer, settings = span_toy
    module = TextTagger(model, tokenizer, settings["max_seq_length"])
    texts = ["张三在北京", "", "李小四去了上海市"]
    batch = to_features({"text": tf.constant(texts)}, tokenizer)
    by_ids = module.predict_ids(batch["token_ids"], tf.cast(batch["padding_mask"], tf.int32), batch["segment_ids"])
    by_text = outputs(module, texts)
    assert "tags" not in by_ids and by_text["num_entities"].tolist() == [2, 0, 2]
    for key in ("entity_type", "entity_start", "entity_end", "num_entities"):
        np.testing.assert_array_equal(by_ids[key].numpy(), by_text[key], err_msg=key)
    np.testing.assert_allclose(by_ids["entity_score"], by_text["entity_score"], rtol=1e-5)
