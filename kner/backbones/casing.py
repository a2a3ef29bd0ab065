"""Whether a checkpoint was pretrained on lower-cased text: the default of
`--do_lower_case`, and a warning when a given flag disagrees.

BERT releases do not record it in their config (Google's `tokenization.py`
says it "should have been stored in the bert_config.json file, but it's
not"). It is read from the first of:

1. `tokenizer_config.json`'s `do_lower_case` (Hugging Face directories), or
   keras-hub's `tokenizer.json` `config.lowercase` (presets);
2. the checkpoint's folder name, as Google's
   `validate_case_matches_checkpoint` reads it (`uncased_L-12_H-768_A-12`,
   `cased_L-24_H-1024_A-16`, `multi_cased_...`, `chinese_...`,
   `multilingual_...`), extended to the same pattern for Google's other
   releases (`wwm_uncased_...`, the small `uncased_L-4_H-256_A-4` ...);
3. the vocab: Google's cased vocab has thousands of pieces with capitals
   (8,368 of 28,996), the uncased and Chinese vocabs almost none (2 besides
   the special tokens). Over 1% means cased.

Example:

```python
casing = checkpoint_casing("cased_L-12_H-768_A-12")
casing.lowercase, casing.evidence  # False, "its folder name cased_L-12_H-768_A-12"
do_lower_case = resolve_lowercase(FLAGS.do_lower_case, "cased_L-12_H-768_A-12")  # warns on a mismatch
```
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path

from kner.backbones import keras_hub_preset
from kner.backbones.loader import VOCABS
from kner.data.vocab import read_vocab

HF_TOKENIZER_CONFIG = "tokenizer_config.json"
KERAS_HUB_TOKENIZER_CONFIG = "tokenizer.json"
# Google's names, and the pattern of its other releases.
_CASED_NAME = re.compile(r"(?:wwm_)?(?:multi_)?(un)?cased_L-\d+_H-\d+_A-\d+")
_LOWERCASE_NAME = re.compile(r"(?:multilingual|chinese)_L-\d+_H-\d+_A-\d+")
CASED_VOCAB_SHARE = 0.01
_logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Casing:
    """`lowercase`: the checkpoint's `do_lower_case`; `evidence`: what said so."""

    lowercase: bool
    evidence: str


def checkpoint_casing(checkpoint: str | Path | None, vocabulary: Sequence[str] | None = None) -> Casing | None:
    """How the checkpoint's pretraining text was cased (module doc), or None
    when nothing tells.

    Args:
        checkpoint: the checkpoint's directory or TF1 prefix (None: none).
        vocabulary: the vocab to judge by last; without it, the vocab file
            beside the checkpoint (`vocab.txt`, keras-hub's vocabulary).
    """
    directory = None
    if checkpoint is not None:
        path = Path(checkpoint)
        directory = path if path.is_dir() else path.parent
        casing = _config_casing(directory) or _name_casing(directory.name)
        if casing is not None:
            return casing
        if vocabulary is None:
            found = [directory / name for name in (*VOCABS, keras_hub_preset.VOCAB) if (directory / name).exists()]
            vocabulary = read_vocab(found[0]) if found else None
    return _vocab_casing(vocabulary) if vocabulary is not None else None


def resolve_lowercase(
    given: bool | None, checkpoint: str | Path | None, vocabulary: Sequence[str] | None = None
) -> bool:
    """`--do_lower_case`: `given` when set, else the checkpoint's casing, else
    True (Google's default). A given value the checkpoint contradicts is used,
    with a one-line warning."""
    casing = checkpoint_casing(checkpoint, vocabulary)
    if given is None:
        return True if casing is None else casing.lowercase
    if casing is not None and casing.lowercase != given:
        kind = "uncased" if casing.lowercase else "cased"
        _logger.warning(
            "--do_lower_case=%s, but %s looks %s (%s): fine-tuning will not see text as it was pretrained",
            str(given).lower(),
            checkpoint,
            kind,
            casing.evidence,
        )
    return given


def _config_casing(directory: Path) -> Casing | None:
    hf = _read_json(directory / HF_TOKENIZER_CONFIG)
    if isinstance(hf.get("do_lower_case"), bool):
        value = hf["do_lower_case"]
        return Casing(value, f"{HF_TOKENIZER_CONFIG} has do_lower_case={str(value).lower()}")
    preset = _read_json(directory / KERAS_HUB_TOKENIZER_CONFIG).get("config")
    if isinstance(preset, dict) and isinstance(preset.get("lowercase"), bool):
        value = preset["lowercase"]
        return Casing(value, f"keras-hub's {KERAS_HUB_TOKENIZER_CONFIG} has lowercase={str(value).lower()}")
    return None


def _read_json(path: Path) -> dict:
    """The JSON object in `path`, or {} when there is none (a missing or
    unreadable file only means this source does not tell)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _name_casing(name: str) -> Casing | None:
    cased = _CASED_NAME.fullmatch(name)
    if cased is not None:
        return Casing(cased.group(1) is not None, f"its folder name {name}")
    if _LOWERCASE_NAME.fullmatch(name):
        return Casing(True, f"its folder name {name}")
    return None


def _vocab_casing(vocabulary: Sequence[str]) -> Casing:
    pieces = [t for t in vocabulary if not (t.startswith("[") and t.endswith("]"))]
    capitals = sum(any(c.isupper() for c in piece) for piece in pieces)
    cased = capitals > CASED_VOCAB_SHARE * max(len(pieces), 1)
    return Casing(not cased, f"{capitals:,} of its {len(vocabulary):,} vocab pieces have capitals")
