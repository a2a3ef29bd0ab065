"""keras-hub preset directories: what `Backbone.save_to_preset` (and a
tokenizer's `save_to_preset`) write and `from_preset` reads, for users who
hold keras-hub's presets (e.g. `bert_base_zh`) locally.

    preset/
      config.json                       {"class_name": "BertBackbone", "config": {...}, ...}
      model.weights.h5
      assets/tokenizer/vocabulary.txt   the WordPiece vocabulary

Any keras-hub backbone that takes `token_ids`, `segment_ids` and
`padding_mask` and returns `sequence_output` works with kner's tagger
(`BertBackbone`, `AlbertBackbone`, `ElectraBackbone`); its forward pass is
keras-hub's own.

Example:

```python
backbone = load_preset(Path("bert_base_zh"))
```
"""

from __future__ import annotations

from pathlib import Path

import keras
import keras_hub

from kner.errors import InputError

CONFIG = "config.json"
WEIGHTS = "model.weights.h5"
VOCAB = Path("assets") / "tokenizer" / "vocabulary.txt"
INPUTS = ("token_ids", "segment_ids", "padding_mask")


def is_preset(directory: Path) -> bool:
    """Whether `directory` looks like a keras-hub preset."""
    return (directory / CONFIG).exists() and (directory / WEIGHTS).exists()


def vocab_file(directory: Path) -> Path | None:
    """The preset's tokenizer vocabulary, if it has one."""
    path = directory / VOCAB
    return path if path.exists() else None


def vocabulary_size(backbone: keras_hub.models.Backbone) -> int:
    """The token table size (`ElectraBackbone` calls it `vocab_size`)."""
    return getattr(backbone, "vocabulary_size", None) or backbone.vocab_size


def load_preset(directory: Path) -> keras_hub.models.Backbone:
    """The backbone saved in the preset `directory` (InputError if keras-hub
    cannot load it or kner's tagger cannot call it)."""
    try:
        backbone = keras_hub.models.Backbone.from_preset(str(directory))
    except (ValueError, KeyError, TypeError, OSError) as e:
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(directory / CONFIG, None, f"keras-hub cannot load this preset: {message}") from None
    names = {tensor.name for tensor in backbone.inputs}
    if not set(INPUTS) <= names:
        raise InputError(
            directory / CONFIG,
            None,
            f"{type(backbone).__name__} takes {sorted(names)}; kner's tagger needs {', '.join(INPUTS)} "
            "(BertBackbone, AlbertBackbone, ElectraBackbone)",
        )
    return backbone


def serialize(backbone: keras_hub.models.Backbone) -> dict:
    """A JSON-able description that `deserialize` rebuilds (random weights)."""
    return keras.saving.serialize_keras_object(backbone)


def deserialize(config: dict) -> keras_hub.models.Backbone:
    """The backbone `serialize` described, randomly initialised."""
    return keras.saving.deserialize_keras_object(config)
