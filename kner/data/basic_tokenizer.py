"""BERT's BasicTokenizer (Google's `tokenization.py`) as character tables.

Google's `BasicTokenizer.tokenize` does, in this order:

1. `_clean_text`: drops NUL, U+FFFD and control/format characters (`Cc`,
   `Cf`; tab, newline and carriage return are whitespace), and turns
   whitespace (`Zs` and those three) into a space;
2. `_tokenize_chinese_chars`: puts spaces around every CJK ideograph
   (Google's eight CJK blocks, `CJK_RANGES`), so each is a word of its own;
3. splits on whitespace (Python's `str.split`, which also splits at
   U+2028 and U+2029);
4. with `do_lower_case`: lower-cases each word and strips accents (NFD, then
   drops the nonspacing marks, `Mn`);
5. splits every punctuation character off as a word of its own
   (`_is_punctuation`: the ASCII symbols 33-47, 58-64, 91-96, 123-126, and
   every Unicode `P*` character).

Each step but the last two acts on one character at a time, and these two do
too (lower-casing, NFD and stripping marks map a character to 0..n
characters), so the whole of it is one table: character -> its normalised
characters (`CharTables.replacements`; "" drops it, " " is a word break),
plus which normalised characters split off alone (`punctuation`, and the
CJK ranges). `split_words` applies them in Python; `kner.data.wordpiece`
ships the same tables to TensorFlow as lookup tables, so both agree by
construction, and the tests compare both with Hugging Face's Rust tokenizer.

Lower-casing is Python's `str.lower` per character, as Hugging Face does: a
final capital sigma becomes `σ`, where Google's `token.lower()` on a whole
word gives `ς` (the only context-dependent mapping in Python's `lower`).

Every normalised character remembers the character of the original text it
came from, so tokens get offsets into the text as given (dropped characters
belong to no token, but one inside a word is inside its span).

Example:

```python
from kner.data.basic_tokenizer import char_tables, split_words

split_words("Héllo, 世界!", char_tables(lowercase=True))
# [("hello", [0, 1, 2, 3, 4]), (",", [5]), ("世", [7]), ("界", [8]), ("!", [9])]
```
"""

from __future__ import annotations

import dataclasses
import functools
import unicodedata

# Google's `_is_chinese_char`: the CJK Unified Ideographs blocks and their
# extensions A-E, and the two compatibility blocks (inclusive).
CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)
# Code points the tables scan. Outside them every character maps to itself
# and none is punctuation: CJK ideographs of planes 2 and 3 (no case, no
# decomposition) except the compatibility supplement, unassigned planes 4-13,
# and the private use planes 15-16 (a test checks this against a full scan).
SCANNED = (range(0x0, 0x20000), range(0x2F800, 0x2FA20), range(0xE0000, 0xF0000))
SPACE = " "
_FIRST_CJK = chr(min(low for low, _ in CJK_RANGES))


def is_cjk(code_point: int) -> bool:
    """Google's `_is_chinese_char`."""
    return any(low <= code_point <= high for low, high in CJK_RANGES)


def is_punctuation(char: str) -> bool:
    """Google's `_is_punctuation`: non-alphanumeric ASCII, or Unicode `P*`."""
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_dropped(char: str) -> bool:
    """`_clean_text`'s removals: NUL, U+FFFD, `Cc` and `Cf` except tab/newline/CR."""
    if char in "\t\n\r":
        return False
    return char in "\x00\ufffd" or unicodedata.category(char) in ("Cc", "Cf")


def _is_break(char: str) -> bool:
    """A word break: `_clean_text`'s whitespace (`Zs`, tab, newline, CR),
    and what `str.split` splits at besides (U+2028, U+2029)."""
    return unicodedata.category(char) == "Zs" or char.isspace()


@dataclasses.dataclass(frozen=True)
class CharTables:
    """What BERT's BasicTokenizer does to each character.

    Attributes:
        lowercase: `do_lower_case`.
        replacements: every character whose normalised form is not itself:
            "" when `_clean_text` drops it, " " for a word break, else its
            lower-cased, accent-stripped characters.
        punctuation: every normalised character that `_is_punctuation`
            splits off as a word of its own.
    """

    lowercase: bool
    replacements: dict[str, str]
    punctuation: frozenset[str]

    def normalise(self, char: str) -> str:
        return self.replacements.get(char, char)

    def stands_alone(self, char: str) -> bool:
        """True for a normalised character that is a word by itself (punctuation, CJK)."""
        return char in self.punctuation or (char >= _FIRST_CJK and is_cjk(ord(char)))


def _scanned_chars() -> list[str]:
    return [chr(code) for codes in SCANNED for code in codes if not 0xD800 <= code <= 0xDFFF]


def normal_forms(chars: list[str], lowercase: bool) -> list[str]:
    """Each character's lower-cased, accent-stripped form (or itself).

    Whole-string `lower` and NFD over the characters joined by NUL, which is
    uncased and a canonical starter, so each character is mapped as it
    would be alone (a capital sigma is `σ`) and marks stay with their own
    character; about 10x faster than one call per character."""
    if not lowercase:
        return list(chars)
    joined = unicodedata.normalize("NFD", "\x00".join(chars).lower())
    forms = joined.split("\x00")
    return ["".join(c for c in form if unicodedata.category(c) != "Mn") for form in forms]


@functools.lru_cache(maxsize=2)
def char_tables(lowercase: bool) -> CharTables:
    """The tables of BERT's BasicTokenizer with `do_lower_case=lowercase`,
    built once per process (about 0.3 s)."""
    chars = [c for c in _scanned_chars() if c != "\x00"]
    forms = normal_forms(chars, lowercase)
    replacements = {"\x00": ""}
    for char, form in zip(chars, forms, strict=True):
        if _is_dropped(char):
            replacements[char] = ""
        elif _is_break(char):
            replacements[char] = SPACE
        elif form != char:
            replacements[char] = form
    punctuation = frozenset(c for c in chars if is_punctuation(c))
    return CharTables(lowercase, replacements, punctuation)


def split_words(text: str, tables: CharTables) -> list[tuple[str, list[int]]]:
    """BasicTokenizer's words of `text`, each with the index in `text` of the
    character each of its characters came from."""
    words = []
    word, origins = [], []
    replacements, stands_alone = tables.replacements, tables.stands_alone
    for index, char in enumerate(text):
        for normal in replacements.get(char, char):
            alone = stands_alone(normal)
            if (normal == SPACE or alone) and word:
                words.append(("".join(word), origins))
                word, origins = [], []
            if alone:
                words.append((normal, [index]))
            elif normal != SPACE:
                word.append(normal)
                origins.append(index)
    if word:
        words.append(("".join(word), origins))
    return words
