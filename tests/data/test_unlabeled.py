"""Raw text for distillation: lines cut into pieces, an endless stream cut
into epochs, and batches beside the labelled ones."""

import pytest
import tensorflow as tf
from tagger_dirs import toy_vocabulary

from kner.data.tokenizer import CharTokenizer
from kner.data.unlabeled import UnlabeledInputs, epoch_texts, pieces, unlabeled_batches
from kner.errors import InputError


def test_long_lines_are_cut_into_pieces_and_blank_lines_skipped(tmp_path):
    path = tmp_path / "raw.txt"
    path.write_text("abcdefg\n\n  hi  \n", encoding="utf-8")
    assert list(pieces([path], 3)) == ["abc", "def", "g", "hi"]


def test_epochs_take_consecutive_slices_of_the_cycling_stream(tmp_path):
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("一\n二\n", encoding="utf-8")
    second.write_text("三\n", encoding="utf-8")
    assert epoch_texts([first, second], 10, epoch=0, count=2) == ["一", "二"]
    assert epoch_texts([first, second], 10, epoch=1, count=2) == ["三", "一"]
    assert epoch_texts([first, second], 10, epoch=2, count=4) == ["三", "一", "二", "三"]


def test_no_text_is_a_clear_error(tmp_path):
    blank = tmp_path / "blank.txt"
    blank.write_text(" \n\n", encoding="utf-8")
    with pytest.raises(InputError, match="blank.txt"):
        epoch_texts([blank], 10, epoch=0, count=4)


def test_batches_are_prefixed_features_zipped_beside_the_labelled_batches(tmp_path):
    tokenizer = CharTokenizer(toy_vocabulary())
    texts = ["张三在北京", "李小四", "王五去上海市了", "杭州"] * 2
    dataset = unlabeled_batches(texts, tokenizer, batch_size=4, seed=1)
    batches = list(dataset)
    assert len(batches) == 2
    assert set(batches[0]) == {f"unlabeled_{k}" for k in ("token_ids", "segment_ids", "padding_mask", "label_mask")}
    assert sum(int(tf.reduce_sum(tf.cast(b["unlabeled_padding_mask"], tf.int32))) for b in batches) == sum(
        len(t) + 2 for t in texts
    )
    path = tmp_path / "raw.txt"
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    labelled = tf.data.Dataset.from_tensor_slices({"token_ids": tf.zeros([3, 2, 5], tf.int32)})
    inputs = UnlabeledInputs([path], tokenizer, batch_size=2, steps_per_epoch=3, max_chars=4, seed=0)
    merged = list(inputs(labelled, epoch=1))
    assert len(merged) == 3
    unlabeled = {f"unlabeled_{k}" for k in ("token_ids", "segment_ids", "padding_mask", "label_mask")}
    assert set(merged[0]) == {"token_ids"} | unlabeled
    # Pieces of at most 4 characters: at most 6 tokens with [CLS] and [SEP].
    assert max(int(b["unlabeled_token_ids"].shape[1]) for b in merged) <= 6
