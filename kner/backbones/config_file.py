"""Reading and checking the JSON config files of the Google-layout families
(`bert_config.json`, `albert_config.json`, HFL's `discriminator.json`).

Example:

```python
config = read_json("albert_base/albert_config.json")
check_keys(config, ("vocab_size", "hidden_size"), "albert_config.json")
activation = check_activation(config, {"gelu": "gelu_approximate", "relu": "relu"}, "albert_config.json")
```
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from kner.errors import InputError

# The keys every Google-layout config has (BERT's `BertConfig`).
BERT_KEYS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "max_position_embeddings",
    "type_vocab_size",
    "initializer_range",
)


def read_json(path: str | Path) -> dict:
    """The JSON object in `path` (InputError if missing, not JSON or not an object)."""
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(path, None, "config file not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(path, None, f"not a JSON config: {e}") from None
    if not isinstance(config, Mapping):
        raise InputError(path, None, "config is not a JSON object")
    return dict(config)


def check_keys(config: Mapping, keys: Iterable[str], where: str | Path) -> None:
    """InputError naming the keys of `keys` that `config` lacks, and the
    head count if it does not divide `hidden_size`."""
    if not isinstance(config, Mapping):
        raise InputError(where, None, "config is not a JSON object")
    missing = [key for key in keys if key not in config]
    if missing:
        raise InputError(where, None, f"config lacks {', '.join(missing)}")
    if config["hidden_size"] % config["num_attention_heads"]:
        raise InputError(
            where,
            None,
            f"hidden_size {config['hidden_size']} is not divisible by "
            f"num_attention_heads {config['num_attention_heads']}",
        )


def check_activation(config: Mapping, supported: Mapping[str, str], where: str | Path) -> str:
    """The `EncoderBackbone` activation for the config's `hidden_act`
    (`supported` maps the family's names to it); InputError if unsupported."""
    name = config["hidden_act"]
    if name not in supported:
        raise InputError(where, None, f"hidden_act {name!r} unsupported ({', '.join(supported)})")
    return supported[name]
