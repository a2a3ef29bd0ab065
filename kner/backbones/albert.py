"""ALBERT checkpoints in Google's and in brightmart's layout, as
`EncoderBackbone`s.

Google (google-research/albert `modeling.py`; `albert_base_zh` ...
`albert_xxlarge_zh`, and brightmart's later `*_google` releases such as
`albert_tiny_zh_google`): `albert_config.json`, `model.ckpt-best.*`,
`vocab_chinese.txt`; variables

    bert/embeddings/{word,position,token_type}_embeddings      [*, embedding_size]
    bert/embeddings/LayerNorm/{gamma,beta}                     [embedding_size]
    bert/encoder/embedding_hidden_mapping_in/{kernel,bias}     only if embedding_size != hidden_size
    bert/encoder/transformer/group_G/inner_group_I/
        attention_1/self/{query,key,value}/{kernel,bias}, attention_1/output/dense/*,
        LayerNorm/*, ffn_1/intermediate/dense/*, ffn_1/intermediate/output/dense/*, LayerNorm_1/*
    bert/pooler/dense/{kernel,bias}

brightmart (brightmart/albert_zh `modeling.py`; `albert_tiny_zh`,
`albert_base_zh`, `albert_large_zh`, `albert_xlarge_zh`):
`albert_config_<size>.json`, `albert_model.ckpt.*` (or `bert_model.ckpt.*`),
`vocab.txt`; the token table is factorised as `word_embeddings`
[vocab, embedding_size] times `word_embeddings_2` [embedding_size, hidden_size]
(no bias), position and segment embeddings and the LayerNorm are
`hidden_size` wide, and one block `bert/encoder/layer_shared/...` (BERT's names)
serves every layer.

`hidden_act` is honoured: `"gelu"` is the tanh form in both projects'
`modeling.py`, and Google's Chinese releases say `"relu"` (the maintainers:
ReLU for Chinese, GELU for English, google-research/albert issue #154).
`cls/*` heads, optimizer slots and `global_step` are ignored.

Example:

```python
backbone = backbone_from_config(read_json("albert_base/albert_config.json"), "albert")
assign(backbone, Path("albert_base/model.ckpt-best"), "albert_config.json")
```
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from kner.backbones import tf1_checkpoint
from kner.backbones.config_file import BERT_KEYS, check_activation, check_keys
from kner.backbones.encoder import EncoderBackbone, used_groups
from kner.backbones.weight_table import ALBERT_BLOCK, BERT_BLOCK, OPTIMIZER_SLOTS, WeightTable, assign_checked
from kner.errors import InputError

GOOGLE, BRIGHTMART = "albert", "albert_brightmart"
CONFIG_NAME = "albert_config.json"  # brightmart's are albert_config_<size>.json
PREFIXES = {GOOGLE: "model.ckpt-best", BRIGHTMART: "albert_model.ckpt"}
VOCABS = {GOOGLE: "vocab_chinese.txt", BRIGHTMART: "vocab.txt"}
ACTIVATIONS = {"gelu": "gelu_approximate", "relu": "relu", "tanh": "tanh", "linear": "linear"}
_GROUP = "bert/encoder/transformer/group_"


def check_config(config: Mapping, where: str | Path) -> dict:
    """The config with ALBERT's defaults filled in (InputError if it lacks a
    key or names an unsupported `hidden_act`)."""
    check_keys(config, (*BERT_KEYS, "embedding_size"), where)
    check_activation(config, ACTIVATIONS, where)
    return {"num_hidden_groups": 1, "inner_group_num": 1, **config}


def backbone_from_config(config: Mapping, layout: str = GOOGLE, where: str | Path = CONFIG_NAME) -> EncoderBackbone:
    """A randomly initialised ALBERT backbone in `layout` ("albert" or
    "albert_brightmart") shaped by an ALBERT config."""
    config = check_config(config, where)
    return EncoderBackbone(
        layout=layout,
        vocabulary_size=config["vocab_size"],
        num_layers=config["num_hidden_layers"],
        num_heads=config["num_attention_heads"],
        embedding_dim=config["embedding_size"],
        hidden_dim=config["hidden_size"],
        intermediate_dim=config["intermediate_size"],
        num_groups=config["num_hidden_groups"] if layout == GOOGLE else 1,
        num_inner_repetitions=config["inner_group_num"] if layout == GOOGLE else 1,
        activation=ACTIVATIONS[config["hidden_act"]],
        dropout=config["hidden_dropout_prob"],
        max_sequence_length=config["max_position_embeddings"],
        num_segments=config["type_vocab_size"],
        initializer_range=config["initializer_range"],
    )


def config_from_backbone(backbone: EncoderBackbone) -> dict:
    """The `albert_config.json` contents describing `backbone`."""
    activation = {value: key for key, value in ACTIVATIONS.items()}[backbone.activation]
    return {
        "attention_probs_dropout_prob": backbone.dropout,
        "embedding_size": backbone.embedding_dim,
        "hidden_act": activation,
        "hidden_dropout_prob": backbone.dropout,
        "hidden_size": backbone.hidden_dim,
        "initializer_range": backbone.initializer_range,
        "inner_group_num": backbone.num_inner_repetitions,
        "intermediate_size": backbone.intermediate_dim,
        "max_position_embeddings": backbone.max_sequence_length,
        "num_attention_heads": backbone.num_heads,
        "num_hidden_groups": backbone.num_groups,
        "num_hidden_layers": backbone.num_layers,
        "type_vocab_size": backbone.num_segments,
        "vocab_size": backbone.vocabulary_size,
    }


def weight_table(backbone: EncoderBackbone) -> WeightTable:
    """Every backbone weight under its name in the backbone's layout."""
    table = WeightTable()
    table.add("bert/embeddings/word_embeddings", backbone.token_embedding.embeddings)
    if backbone.token_projection is not None:
        table.add("bert/embeddings/word_embeddings_2", backbone.token_projection.kernel)
    table.add("bert/embeddings/position_embeddings", backbone.position_embedding.position_embeddings)
    table.add("bert/embeddings/token_type_embeddings", backbone.segment_embedding.embeddings)
    table.layer_norm("bert/embeddings/LayerNorm", backbone.embeddings_layer_norm)
    if backbone.layout == BRIGHTMART:
        table.block("bert/encoder/layer_shared", backbone.transformer_layers[0][0], BERT_BLOCK)
    else:
        if backbone.embeddings_projection is not None:
            table.dense("bert/encoder/embedding_hidden_mapping_in", backbone.embeddings_projection)
        for g, group in enumerate(backbone.transformer_layers):
            for i, block in enumerate(group):  # empty for unused groups
                table.block(f"{_GROUP}{g}/inner_group_{i}", block, ALBERT_BLOCK)
    table.dense("bert/pooler/dense", backbone.pooled_dense)
    return table


def is_ignored(name: str) -> bool:
    """Whether a checkpoint variable is not a backbone weight (heads, slots)."""
    return not name.startswith("bert/") or name.endswith(OPTIMIZER_SLOTS)


def assign(backbone: EncoderBackbone, prefix: Path, config_name: str) -> None:
    """Loads the checkpoint at `prefix` into `backbone` after checking that
    its groups, names and shapes match (InputError otherwise)."""
    if backbone.layout == GOOGLE:
        names = tf1_checkpoint.reader(prefix).get_variable_to_shape_map()
        groups = sorted({int(name.split("/")[3][len("group_") :]) for name in names if name.startswith(_GROUP)})
        inner = {name.split("/")[4] for name in names if name.startswith(_GROUP)}
        want = used_groups(backbone.num_layers, backbone.num_groups)
        if groups != want:
            raise InputError(
                prefix,
                None,
                f"{config_name} (num_hidden_layers={backbone.num_layers}, num_hidden_groups="
                f"{backbone.num_groups}) uses groups {want} but the checkpoint has groups {groups}",
            )
        if len(inner) != backbone.num_inner_repetitions:
            raise InputError(
                prefix,
                None,
                f"{config_name} says inner_group_num={backbone.num_inner_repetitions} "
                f"but the checkpoint has {len(inner)} inner groups",
            )
    assign_checked(weight_table(backbone), prefix, is_ignored, "ALBERT", config_name)
