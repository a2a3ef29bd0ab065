"""Hugging Face BERT directories (`config.json` + `model.safetensors`),
read through keras-hub's own converter. `pytorch_model.bin` is not read
(that needs torch); the error says how to convert it once.

Example:

```python
backbone = load_huggingface_bert(Path("chinese-roberta-wwm-ext"))
```
"""

from __future__ import annotations

from pathlib import Path

import keras_hub

from kner.errors import InputError

HF_CONFIG = "config.json"
HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")


def check_weights(directory: Path) -> None:
    """InputError unless `directory` holds safetensors weights."""
    if any((directory / name).exists() for name in HF_WEIGHTS):
        return
    if (directory / "pytorch_model.bin").exists():
        raise InputError(
            directory / "pytorch_model.bin",
            None,
            "kner reads Hugging Face weights only as safetensors; convert "
            'once with: python -c "from transformers import BertModel; '
            f"BertModel.from_pretrained('{directory}').save_pretrained("
            f"'{directory}', safe_serialization=True)\"",
        )
    raise InputError(directory / HF_WEIGHTS[0], None, "missing weights file")


def load_huggingface_bert(directory: Path, config: dict, config_path: Path) -> keras_hub.models.BertBackbone:
    """A `BertBackbone` from a Hugging Face BERT directory whose (checked)
    `config.json` is `config`."""
    if config.get("model_type") != "bert":
        raise InputError(config_path, None, f"model_type {config.get('model_type')!r} is not 'bert'")
    try:
        from safetensors import SafetensorError
    except ImportError:
        raise InputError(directory, None, "reading it needs: pip install safetensors") from None
    try:
        return keras_hub.models.BertBackbone.from_preset(str(directory))
    except (SafetensorError, ValueError, KeyError, OSError) as e:
        message = str(e).splitlines()[0]
        raise InputError(directory, None, f"keras-hub cannot load it: {message}") from None
