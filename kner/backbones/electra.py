"""ELECTRA discriminators in Google's layout (google-research/electra
`model/modeling.py`), as HFL released them for Chinese (ymcui/Chinese-ELECTRA:
small, small-ex, base, large, the 180g and legal variants), as
`EncoderBackbone`s.

A release holds `electra_<size>.{index,data-*,meta}`, `vocab.txt` and (all but
the earliest archives) `discriminator.json` / `generator.json`, configs with
Hugging Face's keys (`embedding_size`, `hidden_size`, ..., `"model_type":
"electra"`). Variables:

    electra/embeddings/{word,position,token_type}_embeddings    [*, embedding_size]
    electra/embeddings/LayerNorm/{gamma,beta}                   [embedding_size]
    electra/embeddings_project/{kernel,bias}                    only if embedding_size != hidden_size
    electra/encoder/layer_N/...                                 BERT's names

The discriminator has no pooler: its pooled output is the first token's
sequence output. ELECTRA's `gelu` is the erf form (`modeling.py`: `0.5 * (1 +
erf(x / sqrt(2)))`), unlike BERT's and ALBERT's tanh form. Generator
(`generator/*`, `generator_predictions/*`) and `discriminator_predictions/*`
variables, optimizer slots and `global_step` are ignored (and counted) when
a discriminator is loaded; `kner.backbones.electra_heads` names them for
pretraining.

Example:

```python
backbone = backbone_from_config(read_json("electra_small/discriminator.json"))
assign(backbone, Path("electra_small/electra_small"), "discriminator.json")
```
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from kner.backbones.config_file import BERT_KEYS, check_activation, check_keys
from kner.backbones.encoder import EncoderBackbone
from kner.backbones.weight_table import BERT_BLOCK, OPTIMIZER_SLOTS, WeightTable, assign_checked, check_layer_count
from kner.errors import InputError

ELECTRA = "electra"
CONFIG_NAME = "discriminator.json"
PREFIX = "electra_model"
VOCAB = "vocab.txt"
ACTIVATIONS = {"gelu": "gelu", "relu": "relu", "tanh": "tanh", "linear": "linear"}
MISSING_CONFIG = (
    "missing: early HFL archives have no config; save config/<size>_discriminator_config.json "
    "from github.com/ymcui/Chinese-ELECTRA here as discriminator.json"
)


def check_config(config: Mapping, where: str | Path) -> dict:
    """The config with `embedding_size` defaulting to `hidden_size`
    (InputError if it lacks a key or names an unsupported `hidden_act`)."""
    check_keys(config, BERT_KEYS, where)
    check_activation(config, ACTIVATIONS, where)
    if config.get("model_type", ELECTRA) != ELECTRA:
        message = f"model_type {config['model_type']!r} is not 'electra' (a discriminator config)"
        raise InputError(where, None, message)
    return {"embedding_size": config["hidden_size"], **config}


def backbone_from_config(config: Mapping, where: str | Path = CONFIG_NAME) -> EncoderBackbone:
    """A randomly initialised ELECTRA discriminator shaped by its config."""
    config = check_config(config, where)
    return EncoderBackbone(
        layout=ELECTRA,
        vocabulary_size=config["vocab_size"],
        num_layers=config["num_hidden_layers"],
        num_heads=config["num_attention_heads"],
        embedding_dim=config["embedding_size"],
        hidden_dim=config["hidden_size"],
        intermediate_dim=config["intermediate_size"],
        activation=ACTIVATIONS[config["hidden_act"]],
        dropout=config["hidden_dropout_prob"],
        max_sequence_length=config["max_position_embeddings"],
        num_segments=config["type_vocab_size"],
        initializer_range=config["initializer_range"],
    )


def config_from_backbone(backbone: EncoderBackbone, architecture: str = "ElectraForPreTraining") -> dict:
    """The `discriminator.json` contents (HFL's keys) describing `backbone`;
    with `architecture="ElectraForMaskedLM"`, a generator's `generator.json`."""
    return {
        "architectures": [architecture],
        "attention_probs_dropout_prob": backbone.dropout,
        "embedding_size": backbone.embedding_dim,
        "hidden_act": backbone.activation,
        "hidden_dropout_prob": backbone.dropout,
        "hidden_size": backbone.hidden_dim,
        "initializer_range": backbone.initializer_range,
        "intermediate_size": backbone.intermediate_dim,
        "layer_norm_eps": 1e-12,
        "max_position_embeddings": backbone.max_sequence_length,
        "model_type": ELECTRA,
        "num_attention_heads": backbone.num_heads,
        "num_hidden_layers": backbone.num_layers,
        "type_vocab_size": backbone.num_segments,
        "vocab_size": backbone.vocabulary_size,
    }


def weight_table(backbone: EncoderBackbone, scope: str = ELECTRA) -> WeightTable:
    """Every backbone weight under its ELECTRA name. The embeddings are
    always `electra/embeddings/*`, the rest under `scope`: `"generator"` for
    a generator sharing the discriminator's embeddings (google-research/electra
    `build_transformer(..., scope="generator")`)."""
    table = WeightTable()
    table.add("electra/embeddings/word_embeddings", backbone.token_embedding.embeddings)
    table.add("electra/embeddings/position_embeddings", backbone.position_embedding.position_embeddings)
    table.add("electra/embeddings/token_type_embeddings", backbone.segment_embedding.embeddings)
    table.layer_norm("electra/embeddings/LayerNorm", backbone.embeddings_layer_norm)
    if backbone.embeddings_projection is not None:
        table.dense(f"{scope}/embeddings_project", backbone.embeddings_projection)
    for i, (block,) in enumerate(backbone.transformer_layers):
        table.block(f"{scope}/encoder/layer_{i}", block, BERT_BLOCK)
    return table


def is_ignored(name: str) -> bool:
    """Whether a checkpoint variable is not a discriminator encoder weight
    (generator, discriminator head, optimizer slots, `global_step`)."""
    return not name.startswith("electra/") or name.endswith(OPTIMIZER_SLOTS)


def assign(backbone: EncoderBackbone, prefix: Path, config_name: str) -> None:
    """Loads the discriminator at `prefix` into `backbone` after checking its
    layers, names and shapes (InputError otherwise)."""
    check_layer_count(prefix, "electra/encoder", backbone.num_layers, config_name)
    assign_checked(weight_table(backbone), prefix, is_ignored, "ELECTRA", config_name)
