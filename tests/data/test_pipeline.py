import numpy as np
import pytest
from shared_data import shared_file
from test_tokenizer import TOY_VOCAB

from kner.data.corpus import Sentence, read_corpus
from kner.data.labels import LabelVocab
from kner.data.pipeline import batched, char_mask, encode, make_dataset, padding_waste, plan_batches
from kner.data.spans import Span
from kner.data.tokenizer import CharTokenizer

SENTENCES = [
    Sentence("上海a", [Span(0, 1, "loc")]),
    Sentence("b", [Span(0, 0, "name")]),
    Sentence("海上海上海", [Span(3, 4, "loc")]),
    Sentence("", []),
]


@pytest.fixture(scope="module")
def tok():
    return CharTokenizer(TOY_VOCAB)


LABELS = LabelVocab.from_types(["loc", "name"], "bio")


def test_batch_layout(tok):
    (batch,) = list(make_dataset(SENTENCES, tok, LABELS, batch_size=4)[0])
    ids = batch["token_ids"].numpy()
    assert ids.shape == (4, 7)  # longest sentence 5 chars + [CLS] + [SEP]
    assert ids[0].tolist() == [tok.cls_id, 6, 7, 8, tok.sep_id, tok.pad_id, tok.pad_id]
    assert ids[3].tolist()[:2] == [tok.cls_id, tok.sep_id]
    assert batch["padding_mask"].numpy().sum(axis=1).tolist() == [5, 3, 7, 2]
    assert not batch["segment_ids"].numpy().any()
    b_loc, i_loc, b_name = LABELS.tag_to_id("B-loc"), LABELS.tag_to_id("I-loc"), LABELS.tag_to_id("B-name")
    # Labels at the heads' positions: the characters, after [CLS].
    assert batch["label_ids"].numpy()[0].tolist() == [b_loc, i_loc, 0, 0, 0, 0]
    assert batch["label_ids"].numpy()[1].tolist()[:2] == [b_name, 0]
    mask = char_mask(batch["padding_mask"]).numpy()
    assert mask.astype(int).tolist()[0] == [0, 1, 1, 1, 0, 0, 0]
    np.testing.assert_array_equal(batch["label_mask"], mask)
    assert not mask[3].any()  # an empty sentence has no labelled position


def test_training_truncates_and_counts_lost_entities(tok):
    _, report = make_dataset(SENTENCES, tok, LABELS, batch_size=2, max_seq_length=5, training=True)
    # max 3 chars: "海上海上海" loses its entity at 3-4.
    assert (report.truncated, report.entities_lost, report.entities) == (1, 1, 3)


def test_evaluation_never_truncates(tok):
    dataset, report = make_dataset(SENTENCES, tok, LABELS, batch_size=4, max_seq_length=4)
    assert report.truncated == 0
    assert next(iter(dataset))["token_ids"].shape[1] == 7


def test_unlabelled_prediction_batches_keep_order(tok):
    dataset, _ = make_dataset([Sentence(s.text, None) for s in SENTENCES], tok, batch_size=3)
    batches = list(dataset)
    assert "label_ids" not in batches[0]
    assert [b["token_ids"].shape[0] for b in batches] == [3, 1]
    assert batches[0]["token_ids"].numpy()[1][1] == 9  # "b", second sentence


def test_plan_is_seeded_complete_and_bucketed():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 60, size=1000).tolist()
    plan = plan_batches(lengths, 32, seed=3)
    assert sorted(np.concatenate(plan).tolist()) == list(range(1000))
    assert [p.tolist() for p in plan] == [p.tolist() for p in plan_batches(lengths, 32, seed=3)]
    assert [p.tolist() for p in plan] != [p.tolist() for p in plan_batches(lengths, 32, seed=4)]

    def mean_spread(batches):
        return np.mean([np.ptp(np.asarray(lengths)[p]) for p in batches if len(p) == 32])

    unbucketed = np.array_split(np.random.default_rng(3).permutation(1000), 1000 // 32)
    assert mean_spread(plan) < mean_spread(unbucketed) / 4  # near-equal lengths per batch


def test_plan_has_one_partial_batch_and_few_shapes():
    lengths = np.random.default_rng(1).integers(1, 120, size=5000)
    plans = [plan_batches(lengths, 32, seed=seed) for seed in range(5)]
    assert len({len(plan) for plan in plans}) == 1  # the same steps per epoch for every seed
    for plan in plans:
        assert sum(len(p) < 32 for p in plan) == 1  # 5000 = 156 * 32 + 8
    shapes = {(len(p), lengths[p].max()) for plan in plans for p in plan}
    assert len(shapes) < 2 * 32 + 5  # about one per bucket (32 here), not one per batch


def test_cluener_padding_waste_below_15_percent(bert_vocab_path):
    sentences = read_corpus(shared_file("cluener/train.json"))
    labels = LabelVocab.from_sentences(sentences, "bio")
    dataset, report = make_dataset(
        sentences, CharTokenizer(bert_vocab_path), labels, batch_size=32, max_seq_length=128, training=True, seed=1
    )
    assert report.truncated == 0
    assert padding_waste(dataset) < 0.15


def test_pad_to_multiple_rounds_lengths_up_and_pads_like_the_batch_padding(tok):
    data = encode(SENTENCES * 5, tok, LABELS)
    plain = list(batched(data, tok, batch_size=3, seed=1))
    rounded = list(batched(data, tok, batch_size=3, seed=1, pad_to_multiple=4))
    assert len(plain) == len(rounded) == 7
    assert {b["token_ids"].shape[1] for b in plain} == {5, 7}
    assert {b["token_ids"].shape[1] for b in rounded} == {8}
    for short, long in zip(plain, rounded):
        width = short["token_ids"].shape[1]
        assert long["token_ids"].shape[1] == -(-width // 4) * 4
        for key, padding in (("token_ids", tok.pad_id), ("padding_mask", False), ("label_mask", False)):
            np.testing.assert_array_equal(long[key][:, :width], short[key])
            assert (long[key].numpy()[:, width:] == padding).all()
        np.testing.assert_array_equal(long["label_ids"][:, : width - 1], short["label_ids"])
        assert not long["label_ids"].numpy()[:, width - 1 :].any()
        np.testing.assert_array_equal(char_mask(long["padding_mask"])[:, :width], char_mask(short["padding_mask"]))


def test_word_level_data_labels_the_first_sub_token_of_each_word():
    from kner.data.units import WordUnits
    from kner.data.wordpiece import WordPieceTokenizer
    from kner.data.words import char_spans, join_words

    tokenizer = WordPieceTokenizer(shared_file("vocab/bert-base-cased-vocab.txt"), lowercase=False)
    words = ["Unbelievably", ",", "Kaitlyn", "visited", "Tiruchirappalli"]
    text, offsets = join_words(words)
    sentence = Sentence(text, char_spans([Span(2, 2, "person"), Span(4, 4, "location")], offsets), words=offsets)
    labels = LabelVocab.from_types(["location", "person"], "bio")
    (batch,), report = make_dataset([sentence], tokenizer, labels, batch_size=1, units=WordUnits())
    pieces = [tokenizer.vocabulary[i] for i in batch["token_ids"].numpy()[0]]
    mask = batch["label_mask"].numpy()[0].tolist()
    # The label mask marks the first piece of each word, never [CLS], [SEP] or a ## piece.
    assert [p for p, m in zip(pieces, mask) if m] == [p for p in pieces[1:-1] if not p.startswith("##")]
    assert sum(mask) == len(words) < len(pieces) - 2
    tags = [labels.tags[i] for i in batch["label_ids"].numpy()[0][: len(words)]]
    assert tags == ["O", "O", "B-person", "O", "B-location"]
    assert report.moved == report.unplaced == 0


def test_character_labels_under_wordpiece_widen_to_whole_sub_tokens_and_are_counted():
    from kner.data.wordpiece import WordPieceTokenizer

    tokenizer = WordPieceTokenizer(shared_file("vocab/bert-base-chinese-vocab.txt"), lowercase=True)
    # "iphone14" is one word of pieces: an entity ending inside a piece widens to it.
    text = "我用iphone14手机"
    tokens = tokenizer.encode_with_offsets(text)
    entity_end = next(e for s, e in zip(tokens.starts, tokens.ends) if e - s > 1 and s >= 2) - 2
    sentence = Sentence(text, [Span(2, entity_end, "product"), Span(0, 0, "person")])
    labels = LabelVocab.from_types(["person", "product"], "bio")
    data = encode([sentence], tokenizer, labels)
    assert (data.report.moved, data.report.unplaced, data.report.entities) == (1, 0, 2)
    ((start, end),) = data.unit_offsets()
    assert len(start) == len(tokens.ids)  # every token is a unit
