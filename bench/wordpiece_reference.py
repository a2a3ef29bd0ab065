"""Is the test suite's WordPiece reference transformers' BertTokenizerFast?

kner's tests (tests/data/test_wordpiece.py) hold its WordPiece tokenizer to
`tests/wordpiece_reference.py`, which builds BertTokenizerFast's pipeline
from the `tokenizers` package alone (so requirements-dev needs neither
transformers nor torch). This checks, in the bench environment, that the two
give the same ids and character offsets: transformers'
`BertTokenizerFast(vocab=vocab.txt, do_lower_case=...)` with its WordPiece
model's `max_input_chars_per_word` set to 200 (Google's; transformers
builds it with 100) against that reference, for both English vocabs, cased
and uncased, on WNUT-17 (all splits), CLUENER dev (Chinese with English
words), and every Unicode code point between two letters (through the
transformers tokenizer's Rust backend, in chunks: its Python `__call__` on a
million texts needs gigabytes). It also compares kner's Python path on the
texts (not on the code points: see the exclusion list in the reference
module). Exits 1 on any difference. About 15 minutes on the 2-core machine,
nearly all of it the code points (`--nocode_points`: about a minute).

Note: in transformers 5.x `BertTokenizerFast(vocab_file=...)` ignores the
file and builds a five-token vocab; `vocab=` (or `from_pretrained(dir)`)
reads it.

    PYTHONPATH=. python bench/wordpiece_reference.py
"""

from __future__ import annotations

import sys
import time

from absl import app, flags
from common import ROOT, SHARED, print_table
from transformers import BertTokenizerFast

sys.path.insert(0, str(ROOT / "tests"))
from wordpiece_reference import (  # noqa: E402 - the tests' helper module
    MAX_INPUT_CHARS_PER_WORD,
    reference_encodings,
    reference_tokenizer,
)

from kner.data.corpus import read_corpus  # noqa: E402
from kner.data.wordpiece import WordPieceTokenizer  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_bool("code_points", True, "Also compare every code point (about 3 minutes per vocab and casing).")
VOCABS = {"cased": SHARED / "vocab/bert-base-cased-vocab.txt", "uncased": SHARED / "vocab/bert-base-uncased-vocab.txt"}


CHUNK = 20_000


def transformers_encodings(tokenizer: BertTokenizerFast, texts: list[str], backend: bool) -> list[tuple]:
    """`(ids, starts, ends)` per text from the tokenizer as users call it,
    or (`backend`) from its Rust tokenizer."""
    if backend:
        encodings = tokenizer.backend_tokenizer.encode_batch(texts, add_special_tokens=False)
        return [(e.ids, [s for s, _ in e.offsets], [end for _, end in e.offsets]) for e in encodings]
    out = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    return [
        (ids, [s for s, _ in offsets], [e for _, e in offsets])
        for ids, offsets in zip(out["input_ids"], out["offset_mapping"])
    ]


def count_same(hf: BertTokenizerFast, reference, kner: WordPieceTokenizer | None, texts: list[str]) -> tuple:
    """How many texts the reference (and kner's Python path) tokenize as `hf`."""
    same_reference, same_kner = 0, 0
    for start in range(0, len(texts), CHUNK):
        chunk = texts[start : start + CHUNK]
        expected = transformers_encodings(hf, chunk, backend=kner is None)
        same_reference += sum(a == b for a, b in zip(expected, reference_encodings(reference, chunk)))
        if kner is not None:
            same_kner += sum(tuple(kner.encode_with_offsets(t)) == e for t, e in zip(chunk, expected))
    return same_reference, same_kner if kner is not None else None


def texts_by_source() -> dict[str, list[str]]:
    wnut = [s.text for split in ("train", "dev", "test") for s in read_corpus(SHARED / f"wnut17/{split}.conll")]
    cluener = [s.text for s in read_corpus(SHARED / "cluener/dev.json")]
    sources = {"wnut17": wnut, "cluener dev": cluener}
    if FLAGS.code_points:
        sources["code points"] = [f"a{chr(c)}b" for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    return sources


def main(argv: list[str]) -> None:
    del argv
    rows, failed = [], False
    sources = texts_by_source()
    for name, path in VOCABS.items():
        for lowercase in (False, True):
            hf = BertTokenizerFast(vocab=str(path), do_lower_case=lowercase)
            hf.backend_tokenizer.model.max_input_chars_per_word = MAX_INPUT_CHARS_PER_WORD
            assert len(hf.get_vocab()) == len(WordPieceTokenizer(path).vocabulary)
            reference = reference_tokenizer(path, lowercase)
            kner = WordPieceTokenizer(path, lowercase=lowercase)
            for source, texts in sources.items():
                start = time.perf_counter()
                same_reference, same_kner = count_same(hf, reference, None if source == "code points" else kner, texts)
                failed |= same_reference != len(texts) or same_kner not in (None, len(texts))
                seconds = time.perf_counter() - start
                rows.append([name, lowercase, source, len(texts), same_reference, same_kner, seconds])
                print(f"{name} lowercase={lowercase} {source}: {same_reference} of {len(texts)} the same", flush=True)
    print_table(["vocab", "lowercase", "texts", "count", "reference same", "kner same", "seconds"], rows)
    if failed:
        print("DIFFERENT: see the table", file=sys.stderr)
        sys.exit(1)
    print("the reference equals BertTokenizerFast on every text")


if __name__ == "__main__":
    app.run(main)
