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

from collections.abc import Mapping
from pathlib import Path

import keras
import keras_hub
from absl import logging

from kner.backbones.config_file import BERT_KEYS, check_activation, check_keys, read_json
from kner.backbones.weight_table import (
    BERT_BLOCK,
    OPTIMIZER_SLOTS,
    Weight,
    WeightTable,
    assign_checked,
    check_layer_count,
)

GOOGLE_CONFIG = "bert_config.json"
GOOGLE_PREFIX = "bert_model.ckpt"
CONFIG_KEYS = BERT_KEYS
KERAS_HUB_INITIALIZER_RANGE = 0.02
# `hidden_act` values computed as keras-hub's GELU (the tanh form): Google's
# "gelu", and transformers' names of the tanh form (its own "gelu" is the erf
# form; the Chinese checkpoints were trained with the tanh form, see above).
TANH_GELU_NAMES = {"gelu": "gelu_approximate", "gelu_new": "gelu_approximate", "gelu_pytorch_tanh": "gelu_approximate"}


def read_bert_config(path: str | Path) -> dict:
    """Reads and checks a Google `bert_config.json` (or HF `config.json`)."""
    return check_config(read_json(path), path)


def check_config(config: Mapping, where: str | Path) -> dict:
    check_keys(config, CONFIG_KEYS, where)
    check_activation(config, TANH_GELU_NAMES, where)
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
        config = check_config(config, "bert_config")
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
    table = WeightTable()
    embeddings = "bert/embeddings"
    table.add(f"{embeddings}/word_embeddings", backbone.token_embedding.embeddings)
    table.add(f"{embeddings}/position_embeddings", backbone.position_embedding.position_embeddings)
    table.add(f"{embeddings}/token_type_embeddings", backbone.segment_embedding.embeddings)
    table.layer_norm(f"{embeddings}/LayerNorm", backbone.embeddings_layer_norm)
    for i, block in enumerate(backbone.transformer_layers):
        table.block(f"bert/encoder/layer_{i}", block, BERT_BLOCK)
    table.dense("bert/pooler/dense", backbone.pooled_dense)
    return table


def is_ignored(name: str) -> bool:
    """Whether a checkpoint variable is not a backbone weight (heads, slots)."""
    return not name.startswith("bert/") or name.endswith(OPTIMIZER_SLOTS)


def assign_google_weights(backbone: keras_hub.models.BertBackbone, prefix: Path, config_name: str) -> None:
    """Assigns every `bert/*` variable of the checkpoint at `prefix` to
    `backbone`, after checking that names and shapes match it (InputError
    naming the variable otherwise; `config_name` is the config it came from)."""
    check_layer_count(prefix, "bert/encoder", backbone.num_layers, config_name)
    assign_checked(weight_table(backbone), prefix, is_ignored, "BERT", config_name)
