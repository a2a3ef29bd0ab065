"""kner's WordPiece tokenizer against Google's own `tokenization.py`.

Google's `BasicTokenizer` + `WordpieceTokenizer` (`max_input_chars_per_word`
200) from a checkout of google-research/bert (`--google_bert`, not shipped
with kner), on both English vocabs, cased and uncased: token ids (Google's
code has no offsets) of WNUT-17 (all splits), CLUENER dev, and every Unicode
code point alone and in three contexts (`a?b`, `the?`, `ΑΣ?`). The one
expected difference is a word-final capital sigma, which Google's
`str.lower()` of a whole word makes `ς` and kner, like Hugging Face, `σ`:
the table counts differing texts, and those not explained by a capital
sigma (which must be 0). About 20 minutes on the 2-core machine.

    PYTHONPATH=. python bench/wordpiece_google.py --google_bert=../bert
"""

from __future__ import annotations

import collections
import sys
import time
from pathlib import Path

from absl import app, flags
from common import SHARED, print_table

from kner.data.corpus import read_corpus
from kner.data.wordpiece import MAX_INPUT_CHARS_PER_WORD, WordPieceTokenizer

FLAGS = flags.FLAGS
flags.DEFINE_string("google_bert", None, "A checkout of google-research/bert (its tokenization.py).", required=True)
VOCABS = {"cased": SHARED / "vocab/bert-base-cased-vocab.txt", "uncased": SHARED / "vocab/bert-base-uncased-vocab.txt"}
CONTEXTS = ("{}", "a{}b", "the{}", "ΑΣ{}")
CAPITAL_SIGMA = "\u03a3"


def main(argv: list[str]) -> None:
    del argv
    sys.path.insert(0, str(Path(FLAGS.google_bert).resolve()))
    import tokenization  # Google's, from --google_bert

    wnut = [s.text for split in ("train", "dev", "test") for s in read_corpus(SHARED / f"wnut17/{split}.conll")]
    characters = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    sources = {
        "wnut17": wnut,
        "cluener dev": [s.text for s in read_corpus(SHARED / "cluener/dev.json")],
        "code points": [context.format(c) for context in CONTEXTS for c in characters],
    }
    rows, failed = [], False
    for name, path in VOCABS.items():
        for lowercase in (False, True):
            kner = WordPieceTokenizer(path, lowercase=lowercase)
            # Google's load_vocab (it reads through TF1's tf.gfile): stripped lines, the last id of a duplicate.
            vocab = collections.OrderedDict((token.strip(), i) for i, token in enumerate(kner.vocabulary))
            basic = tokenization.BasicTokenizer(do_lower_case=lowercase)
            pieces = tokenization.WordpieceTokenizer(vocab, max_input_chars_per_word=MAX_INPUT_CHARS_PER_WORD)
            for source, texts in sources.items():
                start = time.perf_counter()
                differ = [
                    text
                    for text in texts
                    if kner.encode(text) != [vocab[p] for word in basic.tokenize(text) for p in pieces.tokenize(word)]
                ]
                unexplained = sum(CAPITAL_SIGMA not in text for text in differ)
                failed |= unexplained > 0
                seconds = time.perf_counter() - start
                rows.append([name, lowercase, source, len(texts), len(differ), unexplained, seconds])
                print(f"{name} lowercase={lowercase} {source}: {len(differ)} differ", flush=True)
    print_table(["vocab", "lowercase", "texts", "count", "differ", "without a capital sigma", "seconds"], rows)
    if failed:
        print("DIFFERENT beyond the final sigma: see the table", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    app.run(main)
