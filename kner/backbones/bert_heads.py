"""Google's pretraining heads (`cls/*`) in a TF1 checkpoint: names,
shapes, reading.

The names and shapes are those of google-research/bert `run_pretraining.py`
(`get_masked_lm_output`, `get_next_sentence_output`), which every released
Chinese BERT checkpoint (Google's `chinese_L-12_H-768_A-12`, HFL's
`chinese-(roberta-)wwm-ext`) carries, and of google-research/albert
`run_pretraining.py` (`get_masked_lm_output`, `get_sentence_order_output`:
the same scopes, the transform `embedding_size` wide), which Google's
`albert_*_zh` carry:

| variable | shape |
|---|---|
| `cls/predictions/transform/dense/kernel` | `[hidden, width]` |
| `cls/predictions/transform/dense/bias` | `[width]` |
| `cls/predictions/transform/LayerNorm/gamma`, `beta` | `[width]` |
| `cls/predictions/output_bias` | `[vocab_size]` |
| `cls/seq_relationship/output_weights` | `[2, hidden]` |
| `cls/seq_relationship/output_bias` | `[2]` |

`width` is `hidden_size` for BERT and `embedding_size` for ALBERT. The
masked-LM output weights are the word embeddings (tied), so they are not
stored twice. `cls/seq_relationship` is next-sentence prediction in BERT and
sentence-order prediction in ALBERT. Writing is
`kner.backbones.loader.save_google_checkpoint(..., heads=...)`.

Example:
>>> heads_in(read_variables("chinese_L-12_H-768_A-12/bert_model.ckpt"))
['masked_lm', 'seq_relationship']
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import keras

from kner.backbones.weight_table import OPTIMIZER_SLOTS, Weight, assign_checked

MASKED_LM, SEQ_RELATIONSHIP = "masked_lm", "seq_relationship"
SCOPES = {MASKED_LM: "cls/predictions", SEQ_RELATIONSHIP: "cls/seq_relationship"}
DESCRIPTIONS = {
    MASKED_LM: "masked LM (cls/predictions)",
    SEQ_RELATIONSHIP: "next-sentence or sentence-order prediction (cls/seq_relationship)",
}


def heads_in(names: Iterable[str]) -> list[str]:
    """The heads (`masked_lm`, `seq_relationship`) whose variables appear in
    `names` (checkpoint variable names), in that order."""
    names = list(names)
    return [head for head, scope in SCOPES.items() if any(n.startswith(scope + "/") for n in names)]


def masked_lm_weights(
    dense: keras.layers.Dense, layer_norm: keras.layers.LayerNormalization, output_bias
) -> list[Weight]:
    """The masked-LM head's variables under Google's names."""
    scope = SCOPES[MASKED_LM]
    return [
        Weight(f"{scope}/transform/dense/kernel", dense.kernel, tuple(dense.kernel.shape)),
        Weight(f"{scope}/transform/dense/bias", dense.bias, tuple(dense.bias.shape)),
        Weight(f"{scope}/transform/LayerNorm/gamma", layer_norm.gamma, tuple(layer_norm.gamma.shape)),
        Weight(f"{scope}/transform/LayerNorm/beta", layer_norm.beta, tuple(layer_norm.beta.shape)),
        Weight(f"{scope}/output_bias", output_bias, tuple(output_bias.shape)),
    ]


def seq_relationship_weights(output_weights, output_bias) -> list[Weight]:
    """The sentence-pair head's variables (`output_weights` `[2, hidden]`)."""
    scope = SCOPES[SEQ_RELATIONSHIP]
    return [
        Weight(f"{scope}/output_weights", output_weights, tuple(output_weights.shape)),
        Weight(f"{scope}/output_bias", output_bias, tuple(output_bias.shape)),
    ]


def assign_head_weights(prefix: str | Path, weights: Sequence[Weight]) -> None:
    """Assigns `weights` (one head's) from the checkpoint at `prefix`, after
    checking that each exists with the expected shape and that the head's
    scope holds nothing else (InputError naming the variable)."""
    scopes = tuple("/".join(w.name.split("/")[:2]) + "/" for w in weights)

    def is_ignored(name: str) -> bool:
        return not name.startswith(scopes) or name.endswith(OPTIMIZER_SLOTS)

    assign_checked(list(weights), prefix, is_ignored, "pretraining head", "the model")
