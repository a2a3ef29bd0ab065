"""A bfloat16 encoder for serving whose only bfloat16 arithmetic is its matmuls.

The CPU's bfloat16 gain is in matrix products (oneDNN with AVX512-BF16/AMX:
`tf.matmul` at 2.4-2.5x its float32 rate here, `bench/matmul.py`). TensorFlow's
element-wise kernels (Eigen: `Mul`, `AddV2`, `Tanh`, `Square`, ...) are not
faster in bfloat16 but 2-3.5x *slower* than in float32 (traced at 4L/256;
each element is widened and narrowed again). A backbone built entirely in bfloat16 (the
Keras "bfloat16" policy) runs its LayerNorms, GELUs, softmax and residual
sums that way, which ate most of the matmul gain at 4L/256 (bench/README.md,
"Serving: where a batch-32 call spends its time").

`bfloat16_matmuls` keeps the weights of a backbone built under the
"bfloat16" policy (stored as bfloat16, so the matmuls read their weights
without per-call casts; LayerNorm casts its two small vectors)
and its `Dense` and `EinsumDense` layers (the projections and the
feed-forward network) and embedding lookups computing in bfloat16; every
other layer (LayerNorm, attention softmax, dropout, the blocks' residual sums)
is switched to float32, and a `Dense` layer's activation (GELU, ReLU, tanh)
runs on its output cast to float32. Keras casts a layer's floating inputs to
its compute dtype, so the boundaries cost one cast per projection input and
output. The tagger's classifier and CRF are float32 already
(`kner.models.tagger`).

Example:
>>> model, tokenizer, settings = load_tagger(model_dir, "bfloat16")
>>> bfloat16_matmuls(model)   # in place; returns the model
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import keras_hub
import tensorflow as tf

# Layers that keep computing in bfloat16: the matmuls and the table lookups
# (an embedding layer only gathers rows, and a float32 one would cast its
# whole bfloat16 table at every call).
BFLOAT16_LAYERS = (
    keras.layers.Dense,
    keras.layers.EinsumDense,
    keras.layers.Embedding,
    keras_hub.layers.PositionEmbedding,
)


def _in_float32(activation: Callable[[tf.Tensor], tf.Tensor]) -> Callable[[tf.Tensor], tf.Tensor]:
    """`activation` applied to its input cast to float32."""

    def float32_activation(x: tf.Tensor) -> tf.Tensor:
        return activation(tf.cast(x, tf.float32))

    return float32_activation


def bfloat16_matmuls(model: keras.Model) -> keras.Model:
    """Switches every layer of `model` but the matmul and lookup layers
    (`BFLOAT16_LAYERS`) to float32 compute, and the activations of the
    bfloat16 `Dense` layers to float32, in place; returns `model`.

    Args:
        model: a `kner.models.tagger.Tagger` whose backbone was built under
            the "bfloat16" policy (`load_tagger(model_dir, "bfloat16")`).

    Raises:
        ValueError: if the backbone does not compute in bfloat16.
    """
    if model.backbone.compute_dtype != "bfloat16":
        raise ValueError(f"the backbone computes in {model.backbone.compute_dtype}, not bfloat16")
    for layer in model._flatten_layers(include_self=True, recursive=True):
        if not isinstance(layer, BFLOAT16_LAYERS):
            layer.dtype_policy = "float32"
        elif getattr(layer, "activation", None) not in (None, keras.activations.linear):
            layer.activation = _in_float32(layer.activation)
    return model
