import json

import numpy as np
import pytest
import tensorflow as tf

from kner.data.pretraining_data import ExampleConfig, pair_warning, parse_example, prepare_examples, split_sentences
from kner.data.raw_text import layout_paths
from kner.data.segmentation import word_lengths
from kner.data.tokenizer import CharTokenizer, build_vocab
from kner.errors import InputError

TEXT = [
    "今天天气很好。我们去公园散步！公园里有很多人在跑步。",
    "这本书讲的是一个山村教师的故事。她在学校教了三十年书。",
    "周末的菜市场格外热闹。西红柿三块钱一斤。黄瓜两块五。",
]


def tokenizer():
    return CharTokenizer(build_vocab(TEXT))


def read(path):
    return [{k: v.numpy() for k, v in parse_example(r).items()} for r in tf.data.TFRecordDataset(str(path))]


def test_split_sentences_keeps_closing_quotes():
    assert split_sentences("你好。他说：“走！”好") == ["你好。", "他说：“走！”", "好"]


def test_examples_pack_sentences_with_word_ids_from_the_segmenter(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(TEXT) + "\n", encoding="utf-8")
    tok = tokenizer()
    data = prepare_examples([("line", corpus)], tok, ExampleConfig(max_seq_length=20), tmp_path / "cache", "train")
    examples = read(data.path)
    assert data.examples == len(examples) and data.documents == 3
    text = "".join(TEXT)
    recovered = ""
    for ex in examples:
        ids, words = ex["token_ids"], ex["word_ids"]
        assert len(ids) <= 20 and ids[0] == tok.cls_id and ids[-1] == tok.sep_id
        assert words[0] == -1 and words[-1] == -1 and (np.diff(words[1:-1]) >= 0).all()
        chars = "".join(tok.vocabulary[i] for i in ids[1:-1])
        recovered += chars
        # Word boundaries are jieba's (when a word is not cut by a sentence end or the length limit).
        spans = np.split(np.arange(len(chars)), np.flatnonzero(np.diff(words[1:-1])) + 1)
        assert sum(len(s) for s in spans) == len(chars)
        assert "".join(chars[s[0] : s[-1] + 1] for s in spans) == chars
    assert recovered == text  # packing loses no text when sentences fit
    first = examples[0]["word_ids"][1:-1]
    sentence = split_sentences(TEXT[0])[0]
    runs = np.diff(np.flatnonzero(np.diff(np.concatenate([[-2], first, [-2]]))))
    assert list(runs[: len(word_lengths(sentence))]) == word_lengths(sentence)


def test_cache_is_reused_and_rebuilt_when_the_input_changes(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(TEXT) + "\n", encoding="utf-8")
    config = ExampleConfig(max_seq_length=32)
    first = prepare_examples([("line", corpus)], tokenizer(), config, tmp_path / "cache", "train")
    again = prepare_examples([("line", corpus)], tokenizer(), config, tmp_path / "cache", "train")
    assert again.path == first.path
    assert json.loads(first.path.with_suffix(".json").read_text())["examples"] == first.examples
    chars = prepare_examples(
        [("line", corpus)], tokenizer(), ExampleConfig(32, whole_word_mask=False), tmp_path / "cache", "train"
    )
    assert chars.path != first.path
    for ex in read(chars.path):  # character masking: every character its own word
        np.testing.assert_array_equal(ex["word_ids"][1:-1], np.arange(len(ex["token_ids"]) - 2))


def test_nsp_pairs_have_two_segments_and_both_labels(tmp_path):
    corpus = tmp_path / "g.txt"
    documents = ["\n".join(split_sentences(t) * 3) for t in TEXT * 4]
    corpus.write_text("\n\n".join(documents) + "\n", encoding="utf-8")
    data = prepare_examples(
        [("google", corpus)], tokenizer(), ExampleConfig(40, sentence_task="nsp"), tmp_path, "train"
    )
    examples = read(data.path)
    labels = {int(ex["next_sentence_label"]) for ex in examples}
    assert labels == {0, 1}
    for ex in examples:
        assert len(ex["token_ids"]) <= 40
        seps = np.flatnonzero(ex["token_ids"] == tokenizer().sep_id)
        if len(seps) == 2:
            assert (ex["segment_ids"][: seps[0] + 1] == 0).all() and (ex["segment_ids"][seps[0] + 1 :] == 1).all()
            assert ex["word_ids"][seps[0]] == -1


SENTENCES = [s for text in TEXT for s in split_sentences(text)]


def segments(example, tok):
    """The texts of segments A and B of a prepared example."""
    ids, segment_ids = example["token_ids"], example["segment_ids"]
    text = np.array([tok.vocabulary[i] for i in ids])
    body = (ids != tok.cls_id) & (ids != tok.sep_id)
    return "".join(text[body & (segment_ids == 0)]), "".join(text[body & (segment_ids == 1)])


def nsp_corpus(tmp_path, documents):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join("\n".join(d) for d in documents) + "\n", encoding="utf-8")
    return corpus


def test_nsp_on_one_document_is_an_error_naming_the_file_the_layout_and_nonsp(tmp_path):
    """google-research/bert#125's other half: one document gives only "is next"
    labels (and, before, examples without a segment B)."""
    corpus = nsp_corpus(tmp_path, [SENTENCES * 20])
    with pytest.raises(InputError) as error:
        prepare_examples(
            [("google", corpus)], tokenizer(), ExampleConfig(40, sentence_task="nsp"), tmp_path / "cache", "train"
        )
    message = str(error.value)
    assert message.startswith(f"{corpus}: 1 document in the train text") and "\n" not in message
    assert "in the google layout a document is the lines (one sentence each) up to a blank line" in message
    assert "--nonsp" in message
    assert not list((tmp_path / "cache").glob("train-*"))  # nothing written
    line = tmp_path / "line.txt"
    line.write_text("".join(TEXT) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"in the line layout a document is one line"):
        prepare_examples(
            [("line", line)], tokenizer(), ExampleConfig(40, sentence_task="nsp"), tmp_path / "cache", "train"
        )
    # Without NSP one document is fine.
    assert prepare_examples([("google", corpus)], tokenizer(), ExampleConfig(40), tmp_path / "cache", "train").examples


def test_nsp_with_a_blank_line_after_every_sentence_warns_and_never_leaves_b_empty(tmp_path):
    """google-research/bert#125: every sentence its own document gives (almost)
    only random B segments, which the warning names."""
    corpus = nsp_corpus(tmp_path, [[s] for s in SENTENCES * 10])
    tok = tokenizer()
    data = prepare_examples([("google", corpus)], tok, ExampleConfig(40, sentence_task="nsp"), tmp_path, "train")
    examples = read(data.path)
    assert data.examples == len(examples) == len(SENTENCES) * 10
    assert all(segments(ex, tok)[1] for ex in examples)
    assert data.labels[1] > 0.95 * data.examples and data.one_sentence_documents == data.documents
    warning = pair_warning(data, "training")
    assert "one sentence per document" in warning and data.label_split() in warning
    assert json.loads(data.path.with_suffix(".json").read_text())["labels"] == list(data.labels)


def test_nsp_on_proper_documents_is_balanced_and_is_next_means_b_follows_a(tmp_path):
    rng = np.random.default_rng(0)
    documents = [[SENTENCES[i] for i in rng.choice(len(SENTENCES), 6, replace=False)] for _ in range(60)]
    corpus = nsp_corpus(tmp_path, documents)
    tok = tokenizer()
    data = prepare_examples([("google", corpus)], tok, ExampleConfig(40, sentence_task="nsp"), tmp_path, "train")
    assert 0.3 <= data.labels[0] / data.examples <= 0.7 and pair_warning(data, "training") is None
    texts = ["".join(d) for d in documents]
    for ex in read(data.path):
        a, b = segments(ex, tok)
        assert a and b and len(ex["token_ids"]) <= 40
        if ex["next_sentence_label"] == 0:
            assert any(a + b in text for text in texts), (a, b)
    # Cached: the split comes back with the examples.
    again = prepare_examples([("google", corpus)], tok, ExampleConfig(40, sentence_task="nsp"), tmp_path, "train")
    assert again.labels == data.labels and again.one_sentence_documents == 0


def test_sop_pairs_are_consecutive_segments_of_one_document_swapped_half_the_time(tmp_path):
    rng = np.random.default_rng(1)
    documents = [[SENTENCES[i] for i in rng.choice(len(SENTENCES), 5, replace=False)] for _ in range(150)]
    documents += [[SENTENCES[i]] for i in range(len(SENTENCES))] * 5  # one sentence: split at a jieba word boundary
    corpus = nsp_corpus(tmp_path, documents)
    tok = tokenizer()
    data = prepare_examples([("google", corpus)], tok, ExampleConfig(40, sentence_task="sop"), tmp_path, "train")
    examples = read(data.path)
    assert data.sentence_task == "sop" and sum(data.labels) == data.examples == len(examples) > 300
    texts = ["".join(d) for d in documents]
    boundaries = {s: np.cumsum(word_lengths(s)).tolist() for s in SENTENCES}
    for ex in examples:
        a, b = segments(ex, tok)
        assert a and b and len(ex["token_ids"]) <= 40
        first, second = (b, a) if ex["next_sentence_label"] == 1 else (a, b)
        assert any(first + second in text for text in texts), (a, b, ex["next_sentence_label"])
        if first + second in boundaries:  # a one-sentence document, split between two of its words
            assert len(first) in boundaries[first + second]
    swapped = data.labels[1] / data.examples
    assert abs(swapped - 0.5) < 3 * np.sqrt(0.25 / data.examples)  # a fair coin, within 3 standard deviations
    assert pair_warning(data, "training") is None


def test_sop_on_one_word_documents_is_an_error_naming_nosop(tmp_path):
    corpus = nsp_corpus(tmp_path, [["今天"], ["公园"]])
    with pytest.raises(InputError, match=r"no SOP pair in the train text: every document is a single word.*--nosop"):
        prepare_examples([("google", corpus)], tokenizer(), ExampleConfig(40, sentence_task="sop"), tmp_path, "train")
    assert not list(tmp_path.glob("train-*"))
    # One document is enough for SOP.
    one = nsp_corpus(tmp_path, [SENTENCES])
    data = prepare_examples([("google", one)], tokenizer(), ExampleConfig(40, sentence_task="sop"), tmp_path, "train")
    assert data.examples > 1


def test_ner_layouts_and_held_out_documents(tmp_path):
    cluener = tmp_path / "train.json"
    lines = [json.dumps({"text": t, "label": {}}, ensure_ascii=False) for t in TEXT * 10]
    cluener.write_text("\n".join(lines) + "\n", encoding="utf-8")
    sources = layout_paths(f"cluener:{cluener}", "line", ("line", "cluener"))
    kept = prepare_examples(sources, tokenizer(), ExampleConfig(128), tmp_path, "train", lambda i: i % 2 == 0)
    held = prepare_examples(sources, tokenizer(), ExampleConfig(128), tmp_path, "dev", lambda i: i % 2 == 1)
    assert (kept.documents, held.documents) == (1, 1)  # 30 texts: documents of 20 and 10
    assert kept.tokens > held.tokens > 0


def test_bad_corpus_lines_are_named(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes("好\n".encode() + b"\xfe\n")
    with pytest.raises(InputError, match=r"bad.txt:2: not valid UTF-8"):
        prepare_examples([("line", bad)], tokenizer(), ExampleConfig(), tmp_path, "train")
    assert not list(tmp_path.glob("train-*"))  # nothing half-written is left as a cache
