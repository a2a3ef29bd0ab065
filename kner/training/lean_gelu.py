"""GELU that keeps only its input for the backward pass, swapped into a
model's feed-forward layers for training.

Keras computes GELU (`tf.nn.gelu`) as a chain of element-wise ops, and
differentiating the chain op by op keeps its intermediate tensors from the
forward to the backward pass (in the tanh form `x^3`, the scaled sum,
`tanh`, `1 + tanh`, `0.5 x`, ...), each the size of the feed-forward
activations (batch x length x intermediate size). PyTorch's GELU is one kernel that keeps
its input only. The functions here compute the same values (the same
formula, float for float) and give the gradient from the input alone, by
the closed-form derivative; the chain is recomputed in the backward pass.
At 4L/256, batch 32 x 128 tokens, this cut kner's peak training RSS from
1,589 to 1,435 MiB (bench/README.md, "Peak training memory").

Derivatives, with `u = sqrt(2/pi) (x + 0.044715 x^3)` (tanh form, Google
BERT's `gelu`, keras-hub's `gelu_approximate`) and `Phi`/`phi` the standard
normal CDF/density (erf form, ELECTRA's `gelu`, `keras.activations.gelu`):

    d/dx [0.5 x (1 + tanh u)] = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) sqrt(2/pi) (1 + 3 * 0.044715 x^2)
    d/dx [x Phi(x)]           = Phi(x) + x phi(x)

Example:
>>> swapped = use_lean_gelu(model)   # before the training step is traced
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras_hub.src.utils.keras_utils import gelu_approximate

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
TANH_COEFFICIENT = 0.044715


@tf.custom_gradient
def gelu_tanh(x: tf.Tensor):
    """`0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`, as `tf.nn.gelu(x,
    approximate=True)`; any shape, float dtype."""
    value = tf.nn.gelu(x, approximate=True)

    def gradient(upstream: tf.Tensor) -> tf.Tensor:
        cubic = TANH_COEFFICIENT * tf.square(x)
        tanh = tf.tanh(SQRT_2_OVER_PI * x * (1.0 + cubic))
        slope = 0.5 * (1.0 + tanh) + 0.5 * x * (1.0 - tf.square(tanh)) * SQRT_2_OVER_PI * (1.0 + 3.0 * cubic)
        return upstream * slope

    return value, gradient


@tf.custom_gradient
def gelu_erf(x: tf.Tensor):
    """`x Phi(x)` with `Phi` the standard normal CDF, as `tf.nn.gelu(x,
    approximate=False)`; any shape, float dtype."""
    value = tf.nn.gelu(x, approximate=False)

    def gradient(upstream: tf.Tensor) -> tf.Tensor:
        cdf = 0.5 * (1.0 + tf.math.erf(x * math.sqrt(0.5)))
        density = tf.exp(-0.5 * tf.square(x)) / math.sqrt(2.0 * math.pi)
        return upstream * (cdf + x * density)

    return value, gradient


# The activations keras-hub and kner's backbones give their Dense layers
# (`BertBackbone`, `kner.backbones.encoder.ACTIVATIONS`), and the lean twin of each.
LEAN = {gelu_approximate: gelu_tanh, keras.activations.gelu: gelu_erf}


def use_lean_gelu(model: keras.Layer) -> int:
    """Swaps each Dense layer's GELU in `model` (at any depth) for its lean
    twin of `LEAN`; returns how many were swapped. Values and gradients are
    unchanged (up to float rounding); saved weights and configs too (the
    swap is not serialised: a model rebuilt from its config has Keras's
    GELU). Call before the training step is traced."""
    swapped = 0
    for layer in model._flatten_layers(include_self=True, recursive=True):
        lean = LEAN.get(getattr(layer, "activation", None)) if isinstance(layer, keras.layers.Dense) else None
        if lean is not None:
            layer.activation = lean
            swapped += 1
    return swapped
