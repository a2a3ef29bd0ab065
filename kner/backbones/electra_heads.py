"""ELECTRA's pretraining parts beyond the discriminator: the generator and
the two prediction heads, built, named and shaped as google-research/electra
`run_pretraining.py` builds them (and as HFL's Chinese ELECTRA releases hold
them), for reading and writing TF1 checkpoints.

The generator is a smaller ELECTRA encoder (`get_generator_config`):
`hidden_size` = round(discriminator `hidden_size` x `generator_hidden_size`),
`num_attention_heads` = max(1, hidden / 64), `intermediate_size` = 4 x
hidden, the discriminator's layer count; it shares the discriminator's whole
embedding scope (`electra/embeddings/*`: word, position and token type
embeddings and their LayerNorm) and has its own `embeddings_project` when its
hidden size differs from `embedding_size`. HFL's chinese-electra-small
(discriminator 256 wide, `generator_hidden_size` 0.25) has a generator of 64
hidden, 1 head, FFN 256 (`config/small_generator_config.json`).

| variable | shape |
|---|---|
| `generator/embeddings_project/kernel`, `bias` | `[embedding, g]`, `[g]` (only when `g != embedding`) |
| `generator/encoder/layer_N/...` | BERT's block names, `g` wide, FFN `4g` |
| `generator_predictions/dense/kernel`, `bias` | `[g, embedding]`, `[embedding]` |
| `generator_predictions/LayerNorm/gamma`, `beta` | `[embedding]` |
| `generator_predictions/output_bias` | `[vocab_size]` |
| `discriminator_predictions/dense/kernel`, `bias` | `[hidden, hidden]`, `[hidden]` |
| `discriminator_predictions/dense_1/kernel`, `bias` | `[hidden, 1]`, `[1]` |

`g` is the generator's hidden size. The generator's logits are against the
word embeddings (tied), so they are not stored twice;
`discriminator_predictions/dense_1` is the second unnamed `tf.layers.dense` of
its scope (Hugging Face's converter renames it `dense_prediction`). Writing is
`kner.backbones.loader.save_google_checkpoint(..., heads=...)`, with
`generator.json` (HFL's keys) beside `discriminator.json`.

Example:
>>> generator = build_generator(discriminator, hidden_size_fraction=0.25)
>>> heads_in(read_variables("chinese_electra_small_L-12_H-256_A-4/electra_small"))
['generator', 'discriminator_predictions']
"""

from __future__ import annotations

from collections.abc import Iterable

import keras

from kner.backbones import electra
from kner.backbones.encoder import EncoderBackbone
from kner.backbones.weight_table import Weight, WeightTable

GENERATOR, DISCRIMINATOR = "generator", "discriminator_predictions"
SCOPES = {GENERATOR: ("generator", "generator_predictions"), DISCRIMINATOR: ("discriminator_predictions",)}
DESCRIPTIONS = {
    GENERATOR: "generator (generator/*, generator_predictions/*)",
    DISCRIMINATOR: "replaced-token detection (discriminator_predictions/*)",
}
GENERATOR_CONFIG = "generator.json"


def generator_shape(hidden_size: int, hidden_size_fraction: float) -> dict[str, int]:
    """google-research/electra `get_generator_config`: the generator's
    `hidden_size`, `num_attention_heads` and `intermediate_size`."""
    hidden = int(round(hidden_size * hidden_size_fraction))
    if hidden < 1:
        raise ValueError(f"generator_hidden_size {hidden_size_fraction} leaves no generator hidden units")
    return {"hidden_size": hidden, "num_attention_heads": max(1, hidden // 64), "intermediate_size": 4 * hidden}


def build_generator(discriminator: EncoderBackbone, hidden_size_fraction: float) -> EncoderBackbone:
    """The generator of `discriminator` (module doc), calling its embedding layers."""
    shape = generator_shape(discriminator.hidden_dim, hidden_size_fraction)
    return EncoderBackbone(
        layout=electra.ELECTRA,
        vocabulary_size=discriminator.vocabulary_size,
        num_layers=discriminator.num_layers,
        num_heads=shape["num_attention_heads"],
        embedding_dim=discriminator.embedding_dim,
        hidden_dim=shape["hidden_size"],
        intermediate_dim=shape["intermediate_size"],
        activation=discriminator.activation,
        dropout=discriminator.dropout,
        max_sequence_length=discriminator.max_sequence_length,
        num_segments=discriminator.num_segments,
        initializer_range=discriminator.initializer_range,
        shared_embeddings=discriminator,
        name="generator",
    )


def heads_in(names: Iterable[str]) -> list[str]:
    """The parts (`generator`, `discriminator_predictions`) whose variables
    appear in `names` (checkpoint variable names), in that order."""
    names = list(names)
    return [
        head
        for head, scopes in SCOPES.items()
        if any(name.startswith(tuple(f"{scope}/" for scope in scopes)) for name in names)
    ]


def generator_weights(
    generator: EncoderBackbone,
    dense: keras.layers.Dense,
    layer_norm: keras.layers.LayerNormalization,
    output_bias,
) -> list[Weight]:
    """The generator's own variables (not the shared `electra/embeddings`)
    and its masked-LM head's, under google-research/electra's names."""
    table = WeightTable(w for w in electra.weight_table(generator, GENERATOR) if w.name.startswith(f"{GENERATOR}/"))
    table.dense("generator_predictions/dense", dense)
    table.layer_norm("generator_predictions/LayerNorm", layer_norm)
    table.add("generator_predictions/output_bias", output_bias)
    return table


def discriminator_weights(dense: keras.layers.Dense, output: keras.layers.Dense) -> list[Weight]:
    """The replaced-token-detection head's variables: `dense` `[hidden,
    hidden]` and `dense_1` (`output`) `[hidden, 1]`."""
    table = WeightTable()
    table.dense(f"{DISCRIMINATOR}/dense", dense)
    table.dense(f"{DISCRIMINATOR}/dense_1", output)
    return table


def generator_config(generator: EncoderBackbone) -> dict:
    """The `generator.json` contents (HFL's keys, `ElectraForMaskedLM`)."""
    return electra.config_from_backbone(generator, architecture="ElectraForMaskedLM")
