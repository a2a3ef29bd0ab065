"""Google BERT's pretraining heads (`cls/*`) in a TF1 checkpoint: names,
shapes, reading, writing.

The names and shapes are those of google-research/bert `run_pretraining.py`
(`get_masked_lm_output`, `get_next_sentence_output`), which every released
Chinese checkpoint (Google's `chinese_L-12_H-768_A-12`, HFL's
`chinese-(roberta-)wwm-ext`) carries:

| variable | shape |
|---|---|
| `cls/predictions/transform/dense/kernel` | `[hidden, hidden]` |
| `cls/predictions/transform/dense/bias` | `[hidden]` |
| `cls/predictions/transform/LayerNorm/gamma`, `beta` | `[hidden]` |
| `cls/predictions/output_bias` | `[vocab_size]` |
| `cls/seq_relationship/output_weights` | `[2, hidden]` |
| `cls/seq_relationship/output_bias` | `[2]` |

The masked-LM output weights are the word embeddings (tied), so they are not
stored twice.

Example:
>>> heads_in(read_variables("chinese_L-12_H-768_A-12/bert_model.ckpt"))
['masked_lm', 'next_sentence']
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import keras
import keras_hub

from kner.backbones import bert, tf1_checkpoint
from kner.backbones.weight_table import OPTIMIZER_SLOTS, Weight, arrays, assign_checked

MASKED_LM, NEXT_SENTENCE = "masked_lm", "next_sentence"
SCOPES = {MASKED_LM: "cls/predictions", NEXT_SENTENCE: "cls/seq_relationship"}
DESCRIPTIONS = {
    MASKED_LM: "masked LM (cls/predictions)",
    NEXT_SENTENCE: "next-sentence prediction (cls/seq_relationship)",
}


def heads_in(names: Iterable[str]) -> list[str]:
    """The heads (`masked_lm`, `next_sentence`) whose variables appear in
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


def next_sentence_weights(output_weights, output_bias) -> list[Weight]:
    """The next-sentence head's variables (`output_weights` `[2, hidden]`)."""
    scope = SCOPES[NEXT_SENTENCE]
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


def save_pretraining_checkpoint(
    backbone: keras_hub.models.BertBackbone,
    heads: Sequence[Weight],
    directory: str | Path,
    vocab_file: str | Path,
) -> Path:
    """Writes `directory/{bert_config.json, vocab.txt, bert_model.ckpt.*}`
    with `bert/*` and the `heads`' `cls/*` variables (float32), replacing
    what was there only once every file is complete. Returns the prefix."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    variables = {**arrays(bert.weight_table(backbone)), **arrays(list(heads))}
    staging = Path(tempfile.mkdtemp(prefix=".bert_model.", dir=directory))
    try:
        tf1_checkpoint.write_variables(staging / bert.GOOGLE_PREFIX, variables)
        config = json.dumps(bert.bert_config_from_backbone(backbone), indent=2) + "\n"
        (staging / bert.GOOGLE_CONFIG).write_text(config, encoding="utf-8")
        shutil.copyfile(vocab_file, staging / "vocab.txt")
        # The index last: a reader never finds an index without its data.
        names = sorted(os.listdir(staging), key=lambda name: name.endswith(".index"))
        for name in names:
            os.replace(staging / name, directory / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory / bert.GOOGLE_PREFIX
