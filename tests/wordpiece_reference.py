"""The reference kner's WordPiece tokenizer is held to: Hugging Face's
`BertTokenizerFast` pipeline, built from the `tokenizers` package (the Rust
library it wraps) without transformers or torch, and the code points where
that reference and Google's `tokenization.py` (which kner follows) disagree.

`bench/wordpiece_reference.py` checks that `reference_tokenizer` equals
transformers' own `BertTokenizerFast` on the same inputs.
"""

from pathlib import Path

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

from kner.data.vocab import UNK

# Google's WordpieceTokenizer default; BertTokenizerFast's is 100.
MAX_INPUT_CHARS_PER_WORD = 200

# Code points on which the reference differs from Google's tokenization.py
# under Python 3.11's Unicode 14.0 tables (which kner's tables are built
# from), found by scanning every code point between two letters. TensorFlow
# adds none: kner's graph only decodes UTF-8 and looks its tables up.
#
# Private use (Co): the reference drops them (its BertNormalizer counts every
# "other" category as control), Google only drops Cc and Cf.
PRIVATE_USE = ((0xE000, 0xF8FF), (0xF0000, 0xFFFFD), (0x100000, 0x10FFFD))
# Google's CJK extension E starts at U+2B820, the reference's at U+2B920.
CJK_RANGE_TYPO = ((0x2B820, 0x2B91F),)
# Punctuation and format characters (P*, Cf) of Unicode 14.0 that the
# reference's older category tables do not know, and three whose category
# changed since (U+166D Po -> So, U+111C9 Po -> Mn, U+1734 Mn -> Mc).
NEWER_CATEGORIES = (
    (0x061D, 0x061D), (0x0890, 0x0891), (0x08E2, 0x08E2), (0x09FD, 0x09FD), (0x0A76, 0x0A76), (0x0C77, 0x0C77),
    (0x0C84, 0x0C84), (0x166D, 0x166D), (0x1B7D, 0x1B7E), (0x2E43, 0x2E4F), (0x2E52, 0x2E5D), (0x10EAD, 0x10EAD),
    (0x10F55, 0x10F59), (0x10F86, 0x10F89), (0x110CD, 0x110CD), (0x111C9, 0x111C9), (0x1144B, 0x1144F),
    (0x1145A, 0x1145B), (0x1145D, 0x1145D), (0x11660, 0x1166C), (0x116B9, 0x116B9), (0x1183B, 0x1183B),
    (0x11944, 0x11946), (0x119E2, 0x119E2), (0x11A3F, 0x11A46), (0x11A9A, 0x11A9C), (0x11A9E, 0x11AA2),
    (0x11C41, 0x11C45), (0x11C70, 0x11C71), (0x11EF7, 0x11EF8), (0x11FFF, 0x11FFF), (0x12FF1, 0x12FF2),
    (0x13430, 0x13438), (0x16E97, 0x16E9A), (0x16FE2, 0x16FE2), (0x1E95E, 0x1E95F),
)  # fmt: skip
# Nonspacing marks (Mn) of Unicode 14.0 unknown to the reference's tables,
# which lower-casing strips (so they matter only with lowercase=True).
NEWER_MARKS = (
    (0x07FD, 0x07FD), (0x0898, 0x089F), (0x08CA, 0x08E1), (0x09FE, 0x09FE), (0x0AFA, 0x0AFF), (0x0B55, 0x0B55),
    (0x0C04, 0x0C04), (0x0C3C, 0x0C3C), (0x0D00, 0x0D00), (0x0D3B, 0x0D3C), (0x0D81, 0x0D81), (0x0EBA, 0x0EBA),
    (0x1734, 0x1734), (0x180F, 0x180F), (0x1885, 0x1886), (0x1ABF, 0x1ACE), (0x1DF6, 0x1DFB), (0xA82C, 0xA82C),
    (0xA8C5, 0xA8C5), (0xA8FF, 0xA8FF), (0xA9BD, 0xA9BD), (0x10D24, 0x10D27), (0x10EAB, 0x10EAC),
    (0x10F46, 0x10F50), (0x10F82, 0x10F85), (0x11070, 0x11070), (0x11073, 0x11074), (0x110C2, 0x110C2),
    (0x111CF, 0x111CF), (0x1123E, 0x1123E), (0x1133B, 0x1133B), (0x11438, 0x1143F), (0x11442, 0x11444),
    (0x11446, 0x11446), (0x1145E, 0x1145E), (0x1182F, 0x11837), (0x11839, 0x1183A), (0x1193B, 0x1193C),
    (0x1193E, 0x1193E), (0x11943, 0x11943), (0x119D4, 0x119D7), (0x119DA, 0x119DB), (0x119E0, 0x119E0),
    (0x11A01, 0x11A0A), (0x11A33, 0x11A38), (0x11A3B, 0x11A3E), (0x11A47, 0x11A47), (0x11A51, 0x11A56),
    (0x11A59, 0x11A5B), (0x11A8A, 0x11A96), (0x11A98, 0x11A99), (0x11C30, 0x11C36), (0x11C38, 0x11C3D),
    (0x11C3F, 0x11C3F), (0x11C92, 0x11CA7), (0x11CAA, 0x11CB0), (0x11CB2, 0x11CB3), (0x11CB5, 0x11CB6),
    (0x11D31, 0x11D36), (0x11D3A, 0x11D3A), (0x11D3C, 0x11D3D), (0x11D3F, 0x11D45), (0x11D47, 0x11D47),
    (0x11D90, 0x11D91), (0x11D95, 0x11D95), (0x11D97, 0x11D97), (0x11EF3, 0x11EF4), (0x16F4F, 0x16F4F),
    (0x16FE4, 0x16FE4), (0x1CF00, 0x1CF2D), (0x1CF30, 0x1CF46), (0x1E000, 0x1E006), (0x1E008, 0x1E018),
    (0x1E01B, 0x1E021), (0x1E023, 0x1E024), (0x1E026, 0x1E02A), (0x1E130, 0x1E136), (0x1E2AE, 0x1E2AE),
    (0x1E2EC, 0x1E2EF), (0x1E944, 0x1E94A),
)  # fmt: skip
# Also different, from Google only (kner and the reference agree): a capital
# sigma ending a word lower-cases to `σ` in both, `ς` in Google's str.lower.


def excluded_ranges(lowercase: bool) -> tuple[tuple[int, int], ...]:
    """The code points kept out of comparisons with the reference."""
    return PRIVATE_USE + CJK_RANGE_TYPO + NEWER_CATEGORIES + (NEWER_MARKS if lowercase else ())


def is_excluded(code_point: int, lowercase: bool) -> bool:
    return any(low <= code_point <= high for low, high in excluded_ranges(lowercase))


def read_vocab_dict(path: str | Path) -> dict[str, int]:
    """The vocab as transformers' `load_vocab` reads it (a later duplicate wins)."""
    tokens = Path(path).read_text(encoding="utf-8").split("\n")
    if tokens[-1] == "":
        tokens.pop()
    return {token.rstrip("\r"): i for i, token in enumerate(tokens)}


def reference_tokenizer(vocab_path: str | Path, lowercase: bool) -> Tokenizer:
    """`BertTokenizerFast(vocab=vocab_path, do_lower_case=lowercase)`'s pipeline,
    with `max_input_chars_per_word=200`, without its special tokens."""
    vocab = read_vocab_dict(vocab_path)
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token=UNK, max_input_chars_per_word=MAX_INPUT_CHARS_PER_WORD))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=lowercase, lowercase=lowercase
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tokenizer


def reference_encodings(tokenizer: Tokenizer, texts: list[str]) -> list[tuple[list[int], list[int], list[int]]]:
    """`(ids, starts, ends)` per text, offsets in characters."""
    encodings = tokenizer.encode_batch(texts, add_special_tokens=False)
    return [(e.ids, [s for s, _ in e.offsets], [end for _, end in e.offsets]) for e in encodings]
