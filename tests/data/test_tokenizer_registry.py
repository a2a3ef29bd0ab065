import pytest
import tensorflow as tf

from kner.data.tokenizer import CharTokenizer
from kner.data.tokenizer_registry import TOKENIZERS, make_tokenizer
from kner.data.wordpiece import WordPieceTokenizer

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "new", "york", "##er", "n", "e", "w", "y", "o", "r", "k", " "]


CASES = [("char", CharTokenizer, [8, 9, 10, 15, 11, 12, 13, 14]), ("wordpiece", WordPieceTokenizer, [5, 6])]


@pytest.mark.parametrize("kind, cls, ids", CASES)
def test_every_tokenizer_gives_the_same_interface(kind, cls, ids):
    tokenizer = make_tokenizer(kind, VOCAB, lowercase=True)
    assert type(tokenizer) is cls and set(TOKENIZERS) == {"char", "wordpiece"}
    special = (tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id, tokenizer.mask_id)
    assert special == (0, 1, 2, 3, 4)
    assert tokenizer.encode("New York") == ids
    out = tokenizer.tokenize(tf.constant(["New York", ""]))
    encoding = tokenizer.encode_with_offsets("New York")
    assert (out.ids.to_list()[0], out.starts.to_list()[0], out.ends.to_list()[0]) == encoding
    assert out.ids.to_list()[1] == [] and tokenizer(tf.constant(["New York"])).to_list() == [ids]


def test_unknown_tokenizer():
    with pytest.raises(ValueError, match="unknown tokenizer 'bpe'; expected one of char, wordpiece"):
        make_tokenizer("bpe", VOCAB, lowercase=True)
