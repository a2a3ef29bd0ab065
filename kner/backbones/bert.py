"""Google BERT checkpoints (`bert/*`) and `keras_hub.models.BertBackbone`.

The variable names, shapes and `bert_config.json` keys are those of Google's
`modeling.py` (google-research/bert), which Google's
`chinese_L-12_H-768_A-12` and HFL's `chinese-bert-wwm-ext`,
`chinese-roberta-wwm-ext(-large)`, RBT3 and the Tiny/Mini-CN releases use.
Every `bert/*` variable maps onto the backbone; `cls/*` (pre-training heads),
optimizer slots (`*/adam_m`, `*/adam_v`), `global_step` and other non-`bert/`
variables (fine-tuning heads) are ignored.

keras-hub's BERT uses the tanh approximation of GELU, which is exactly
Google's `gelu`, so loaded outputs match Google's `modeling.py`. (Hugging
Face's `"gelu"` is the erf form; the Chinese checkpoints were trained with the
tanh form, which keras-hub uses for those too.)

Example:

```python
backbone = backbone_from_config("chinese_L-12_H-768_A-12/bert_config.json")
assign_google_weights(backbone, "chinese_L-12_H-768_A-12/bert_model.ckpt", "bert_config.json")
```
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import keras
import keras_hub
import numpy as np
from absl import logging

from kner.backbones import tf1_checkpoint
from kner.errors import InputError

GOOGLE_CONFIG = "bert_config.json"
GOOGLE_PREFIX = "bert_model.ckpt"
CONFIG_KEYS = (
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
KERAS_HUB_INITIALIZER_RANGE = 0.02
_LAYER = re.compile(r"^bert/encoder/layer_(\d+)/")


class Weight(NamedTuple):
    """A backbone weight under its Google name."""

    name: str  # Google's variable name.
    variable: keras.Variable
    shape: tuple[int, ...]  # Google's shape; the keras-hub one is a reshape.


def read_bert_config(path: str | Path) -> dict:
    """Reads and checks a Google `bert_config.json` (or HF `config.json`)."""
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(path, None, "config file not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(path, None, f"not a JSON config: {e}") from None
    return _check_config(config, path)


def _check_config(config: Mapping, where: str | Path) -> dict:
    if not isinstance(config, Mapping):
        raise InputError(where, None, "config is not a JSON object")
    missing = [key for key in CONFIG_KEYS if key not in config]
    if missing:
        raise InputError(where, None, f"config lacks {', '.join(missing)}")
    if config["hidden_act"] != "gelu":
        raise InputError(where, None, f"hidden_act {config['hidden_act']!r} unsupported (gelu)")
    if config["hidden_size"] % config["num_attention_heads"]:
        raise InputError(
            where,
            None,
            f"hidden_size {config['hidden_size']} is not divisible by "
            f"num_attention_heads {config['num_attention_heads']}",
        )
    return dict(config)


def backbone_from_config(
    config: str | Path | Mapping,
) -> keras_hub.models.BertBackbone:
    """A randomly initialised backbone shaped by a Google `bert_config.json`.

    keras-hub has one dropout rate for hidden and attention dropout; it is
    set to `hidden_dropout_prob` (a warning is logged when the two differ).

    >>> backbone_from_config("chinese_L-12_H-768_A-12/bert_config.json")
    """
    if isinstance(config, Mapping):
        config = _check_config(config, "bert_config")
    else:
        config = read_bert_config(config)
    if config["attention_probs_dropout_prob"] != config["hidden_dropout_prob"]:
        logging.warning(
            "keras-hub BERT has one dropout rate: using hidden_dropout_prob=%s "
            "for attention too (attention_probs_dropout_prob=%s)",
            config["hidden_dropout_prob"],
            config["attention_probs_dropout_prob"],
        )
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=config["vocab_size"],
        num_layers=config["num_hidden_layers"],
        num_heads=config["num_attention_heads"],
        hidden_dim=config["hidden_size"],
        intermediate_dim=config["intermediate_size"],
        dropout=config["hidden_dropout_prob"],
        max_sequence_length=config["max_position_embeddings"],
        num_segments=config["type_vocab_size"],
    )
    stddev = config["initializer_range"]
    if stddev != KERAS_HUB_INITIALIZER_RANGE:
        initializer = keras.initializers.TruncatedNormal(stddev=stddev)
        for weight in weight_table(backbone):
            if weight.name.endswith(("kernel", "embeddings")):
                weight.variable.assign(initializer(weight.variable.shape))
    return backbone


def bert_config_from_backbone(backbone: keras_hub.models.BertBackbone) -> dict:
    """The Google `bert_config.json` contents describing `backbone`."""
    return {
        "attention_probs_dropout_prob": backbone.dropout,
        "hidden_act": "gelu",
        "hidden_dropout_prob": backbone.dropout,
        "hidden_size": backbone.hidden_dim,
        "initializer_range": KERAS_HUB_INITIALIZER_RANGE,
        "intermediate_size": backbone.intermediate_dim,
        "max_position_embeddings": backbone.max_sequence_length,
        "num_attention_heads": backbone.num_heads,
        "num_hidden_layers": backbone.num_layers,
        "type_vocab_size": backbone.num_segments,
        "vocab_size": backbone.vocabulary_size,
    }


def weight_table(backbone: keras_hub.models.BertBackbone) -> list[Weight]:
    """Every backbone weight with its Google name and shape."""
    hidden = backbone.hidden_dim
    table = []

    def add(name, variable, shape=None):
        table.append(Weight(name, variable, tuple(shape or variable.shape)))

    def dense(name, layer):
        add(f"{name}/kernel", layer.kernel)
        add(f"{name}/bias", layer.bias)

    def layer_norm(name, layer):
        add(f"{name}/gamma", layer.gamma)
        add(f"{name}/beta", layer.beta)

    embeddings = "bert/embeddings"
    add(f"{embeddings}/word_embeddings", backbone.token_embedding.embeddings)
    add(
        f"{embeddings}/position_embeddings",
        backbone.position_embedding.position_embeddings,
    )
    add(f"{embeddings}/token_type_embeddings", backbone.segment_embedding.embeddings)
    layer_norm(f"{embeddings}/LayerNorm", backbone.embeddings_layer_norm)
    for i, block in enumerate(backbone.transformer_layers):
        prefix = f"bert/encoder/layer_{i}"
        attention = block._self_attention_layer
        for part in ("query", "key", "value"):
            projection = getattr(attention, f"{part}_dense")
            name = f"{prefix}/attention/self/{part}"
            add(f"{name}/kernel", projection.kernel, (hidden, hidden))
            add(f"{name}/bias", projection.bias, (hidden,))
        name = f"{prefix}/attention/output/dense"
        add(f"{name}/kernel", attention.output_dense.kernel, (hidden, hidden))
        add(f"{name}/bias", attention.output_dense.bias)
        layer_norm(f"{prefix}/attention/output/LayerNorm", block._self_attention_layer_norm)
        dense(f"{prefix}/intermediate/dense", block._feedforward_intermediate_dense)
        dense(f"{prefix}/output/dense", block._feedforward_output_dense)
        layer_norm(f"{prefix}/output/LayerNorm", block._feedforward_layer_norm)
    dense("bert/pooler/dense", backbone.pooled_dense)
    return table


def is_ignored(name: str) -> bool:
    """Whether a checkpoint variable is not a backbone weight (heads, slots)."""
    return not name.startswith("bert/") or name.endswith(("/adam_m", "/adam_v"))


def assign_google_weights(backbone: keras_hub.models.BertBackbone, prefix: Path, config_name: str) -> None:
    """Assigns every `bert/*` variable of the checkpoint at `prefix` to
    `backbone`, after checking that names and shapes match it (InputError
    naming the variable otherwise; `config_name` is the config it came from)."""
    reader = tf1_checkpoint.reader(prefix)
    shapes = reader.get_variable_to_shape_map()
    layers = {int(m.group(1)) for name in shapes if (m := _LAYER.match(name))}
    if len(layers) != backbone.num_layers:
        raise InputError(
            prefix,
            None,
            f"{config_name} says num_hidden_layers={backbone.num_layers} but the "
            f"checkpoint has {len(layers)} encoder layers",
        )
    table = weight_table(backbone)
    known = {weight.name for weight in table}
    for name in sorted(shapes):
        if not is_ignored(name) and name not in known:
            raise InputError(prefix, None, f"unknown BERT variable {name}")
    for weight in table:
        if weight.name not in shapes:
            raise InputError(prefix, None, f"checkpoint lacks variable {weight.name}")
        if tuple(shapes[weight.name]) != weight.shape:
            raise InputError(
                prefix,
                None,
                f"variable {weight.name} has shape {list(shapes[weight.name])} but "
                f"{config_name} implies {list(weight.shape)}",
            )
    for weight in table:
        value = reader.get_tensor(weight.name).astype("float32")
        weight.variable.assign(value.reshape(weight.variable.shape))


def google_variables(backbone: keras_hub.models.BertBackbone) -> dict[str, np.ndarray]:
    """Google name -> float32 array of every backbone weight, in Google's shapes."""
    return {w.name: np.reshape(w.variable.numpy(), w.shape).astype("float32") for w in weight_table(backbone)}


def write_bert_config(backbone: keras_hub.models.BertBackbone, directory: Path) -> Path:
    """Writes `directory/bert_config.json` describing `backbone`."""
    path = directory / GOOGLE_CONFIG
    path.write_text(json.dumps(bert_config_from_backbone(backbone), indent=2) + "\n", encoding="utf-8")
    return path
