"""A backbone's weights under their TF1 checkpoint names, shared by the
Google-layout families (BERT, ALBERT, ELECTRA).

A family module lists its backbone's weights as `Weight`s (checkpoint name,
Keras variable, checkpoint shape); `assign_checked` loads a checkpoint into
them after checking names and shapes, `arrays` gives them back for writing.

Example:

```python
table = WeightTable()
table.embedding("bert/embeddings/word_embeddings", backbone.token_embedding)
table.block("bert/encoder/layer_0", backbone.transformer_layers[0], BERT_BLOCK)
assign_checked(table, "dir/bert_model.ckpt", is_ignored, "BERT", "bert_config.json")
```
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np
from absl import logging

from kner.backbones import tf1_checkpoint
from kner.errors import InputError

# Checkpoint names of one encoder block's parts, relative to the block's scope.
BERT_BLOCK = {
    "query": "attention/self/query",
    "key": "attention/self/key",
    "value": "attention/self/value",
    "attention_output": "attention/output/dense",
    "attention_norm": "attention/output/LayerNorm",
    "intermediate": "intermediate/dense",
    "output": "output/dense",
    "output_norm": "output/LayerNorm",
}
# google-research/albert `attention_ffn_block`: contrib `layer_norm` without a
# scope names the two LayerNorms `LayerNorm` and `LayerNorm_1`.
ALBERT_BLOCK = {
    "query": "attention_1/self/query",
    "key": "attention_1/self/key",
    "value": "attention_1/self/value",
    "attention_output": "attention_1/output/dense",
    "attention_norm": "LayerNorm",
    "intermediate": "ffn_1/intermediate/dense",
    "output": "ffn_1/intermediate/output/dense",
    "output_norm": "LayerNorm_1",
}
OPTIMIZER_SLOTS = ("/adam_m", "/adam_v")


class Weight(NamedTuple):
    """A backbone weight under its checkpoint name."""

    name: str  # The checkpoint's variable name.
    variable: keras.Variable
    shape: tuple[int, ...]  # The checkpoint's shape; the Keras one is a reshape.


class WeightTable(list):
    """A list of `Weight`s with helpers for the usual layer kinds."""

    def add(self, name: str, variable: keras.Variable, shape: tuple[int, ...] | None = None) -> None:
        self.append(Weight(name, variable, tuple(shape or variable.shape)))

    def dense(self, name: str, layer: keras.layers.Dense) -> None:
        self.add(f"{name}/kernel", layer.kernel)
        if layer.bias is not None:
            self.add(f"{name}/bias", layer.bias)

    def layer_norm(self, name: str, layer: keras.layers.LayerNormalization) -> None:
        self.add(f"{name}/gamma", layer.gamma)
        self.add(f"{name}/beta", layer.beta)

    def block(self, prefix: str, block: keras.layers.Layer, names: Mapping[str, str]) -> None:
        """A keras-hub `TransformerEncoder` under `prefix/<names[part]>`;
        attention kernels in Google's 2-D shapes."""
        attention = block._self_attention_layer
        hidden = attention.output_dense.kernel.shape[-1]
        for part in ("query", "key", "value"):
            projection = getattr(attention, f"{part}_dense")
            self.add(f"{prefix}/{names[part]}/kernel", projection.kernel, (hidden, hidden))
            self.add(f"{prefix}/{names[part]}/bias", projection.bias, (hidden,))
        self.add(f"{prefix}/{names['attention_output']}/kernel", attention.output_dense.kernel, (hidden, hidden))
        self.add(f"{prefix}/{names['attention_output']}/bias", attention.output_dense.bias)
        self.layer_norm(f"{prefix}/{names['attention_norm']}", block._self_attention_layer_norm)
        self.dense(f"{prefix}/{names['intermediate']}", block._feedforward_intermediate_dense)
        self.dense(f"{prefix}/{names['output']}", block._feedforward_output_dense)
        self.layer_norm(f"{prefix}/{names['output_norm']}", block._feedforward_layer_norm)


def ignored_summary(names: list[str], is_ignored: Callable[[str], bool]) -> str:
    """`"12 ignored: cls 7, global_step 1, optimizer slots 4"`: the ignored
    variables counted by top-level scope."""
    counts = Counter(
        "optimizer slots" if name.endswith(OPTIMIZER_SLOTS) else name.split("/")[0]
        for name in names
        if is_ignored(name)
    )
    parts = ", ".join(f"{scope} {count}" for scope, count in sorted(counts.items()))
    return f"{sum(counts.values())} ignored" + (f": {parts}" if parts else "")


def assign_checked(
    table: list[Weight], prefix: str | Path, is_ignored: Callable[[str], bool], family: str, config_name: str
) -> None:
    """Assigns the checkpoint at `prefix` to the table's variables, after
    checking that every non-ignored variable is in the table and every table
    entry is in the checkpoint with its shape (InputError naming the variable
    and `config_name`, the config the table was shaped by, otherwise)."""
    reader = tf1_checkpoint.reader(prefix)
    shapes = reader.get_variable_to_shape_map()
    known = {weight.name for weight in table}
    for name in sorted(shapes):
        if not is_ignored(name) and name not in known:
            raise InputError(prefix, None, f"unknown {family} variable {name}")
    assign_arrays(table, prefix, shapes, reader.get_tensor, config_name)
    ignored = ignored_summary(list(shapes), is_ignored)
    logging.info("loaded %d %s variables from %s (%s)", len(table), family, prefix, ignored)


def assign_arrays(
    table: list[Weight],
    where: str | Path,
    shapes: Mapping[str, Sequence[int]],
    read: Callable[[str], np.ndarray],
    config_name: str,
) -> None:
    """Assigns `read(name)` to each table variable, after checking that every
    entry is in `shapes` (checkpoint name -> shape, of a TF checkpoint or of
    tensors read from another format) with its shape: InputError naming
    `where`, the variable and `config_name` otherwise."""
    for weight in table:
        if weight.name not in shapes:
            raise InputError(where, None, f"checkpoint lacks variable {weight.name}")
        if tuple(shapes[weight.name]) != weight.shape:
            raise InputError(
                where,
                None,
                f"variable {weight.name} has shape {list(shapes[weight.name])} but "
                f"{config_name} implies {list(weight.shape)}",
            )
    for weight in table:
        value = np.asarray(read(weight.name), np.float32)
        weight.variable.assign(value.reshape(weight.variable.shape))


def check_layer_count(prefix: str | Path, encoder_scope: str, num_layers: int, config_name: str) -> None:
    """InputError unless the checkpoint has `encoder_scope/layer_0` ...
    `layer_{num_layers - 1}` (BERT's and ELECTRA's one block per layer)."""
    pattern = re.compile(rf"^{re.escape(encoder_scope)}/layer_(\d+)/")
    names = tf1_checkpoint.reader(prefix).get_variable_to_shape_map()
    layers = {int(m.group(1)) for name in names if (m := pattern.match(name))}
    if len(layers) != num_layers:
        raise InputError(
            prefix,
            None,
            f"{config_name} says num_hidden_layers={num_layers} but the checkpoint has {len(layers)} encoder layers",
        )


def arrays(table: list[Weight]) -> dict[str, np.ndarray]:
    """Checkpoint name -> float32 array in the checkpoint's shape."""
    return {w.name: np.reshape(w.variable.numpy(), w.shape).astype("float32") for w in table}
