"""The encoder's Transformer layers in the ops TensorFlow fuses, for serving.

keras-hub's `TransformerEncoder` runs a BERT block as Keras layers: three
`EinsumDense` projections for query, key and value, a `Dense` followed by a
separate activation, and `LayerNormalization` as a chain of element-wise ops
(`Mean`, `SquaredDifference`, `Rsqrt`, `Mul`, `AddV2`, ...). At serving sizes
(4L/256, chunks of 8 windows) those small ops and the three thin projections
cost as much as the big matmuls. `fuse_encoder_layers` swaps each layer's
`call` for the same computation written as the subgraphs that Grappler's
remapper rewrites into single oneDNN kernels when the graph is loaded
(tensorflow/core/grappler/optimizers/remapper.cc; stock TF and TF Serving
CPU builds use oneDNN):

- query, key and value as **one** 2-D matmul with a `[hidden, 3 * hidden]`
  kernel (concatenated once, at export);
- the block's biases as **one** variable, split at each call (each variable
  read costs a served call four executor ops);
- in float32, the feed-forward's widening kernel stored **transposed**
  (`[intermediate, hidden]`, `transpose_b`): one CLUENER sentence per call
  12-16% faster at 4L/256 and 12L/768 (BUILD.md);
- every projection as `MatMul + BiasAdd [+ Gelu/Relu/Tanh]` -> `_FusedMatMul`
  (GELU in either form, erf or tanh);
- each LayerNorm in the form of Keras 2's fused LayerNormalization
  (`Reshape -> FusedBatchNormV3 -> Reshape -> Mul -> AddV2`) -> `_MklLayerNorm`.

The graph keeps only core ops: without oneDNN the same ops run unfused, with
the same results. With `int8=True` the four projections run as dynamic int8
products instead (`kner.serving.int8`, a oneDNN kernel), their float kernels
no longer saved, and the activation between the feed-forward's two products
in a form with fewer element-wise passes (`_INT8_ACTIVATIONS`). Dropout is
skipped (inference only). Numerics follow the Keras layer, dtype for dtype:
the projections compute in the dtype of the layer's `Dense` sublayers
(bfloat16 under `kner.serving.bfloat16`), the attention softmax, the context
product, LayerNorm and residual sums in float32 (the activation, fused into
the matmul, sees the float32 accumulator plus bias before one rounding).
Against Keras: float32 outputs agree to about 1e-6, bfloat16 ones to
bfloat16 rounding (tests/serving/test_fused_encoder.py).

Measured at 4L/256 bfloat16, CLUENER dev batches of 32, two threads, chunks
of 8 windows (bench/README.md, "Serving: fused encoder layers, chunks by
size, a step-by-step backtrace"): the encoder's traced time per call fell
from 86.1 to 62.2 ms and its ops from 2,692 to 1,696, for 1.23-1.32x the
sentences/s.

Example:
>>> model, tokenizer, settings = load_tagger(model_dir)
>>> fused = fuse_encoder_layers(model.backbone)   # in place
>>> saved = fused.saved_variables(model)   # what a SavedModel of it keeps
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import keras
import keras_hub
import numpy as np
import tensorflow as tf
from keras_hub.src.utils.keras_utils import gelu_approximate

from kner.serving.int8 import QuantizedKernel, check_onednn, int8_dense

# Keras activations -> the TF ops the remapper fuses into `_FusedMatMul`.
_FUSABLE_ACTIVATIONS: dict[Callable, Callable[[tf.Tensor], tf.Tensor]] = {
    gelu_approximate: lambda x: tf.nn.gelu(x, approximate=True),
    keras.activations.gelu: lambda x: tf.nn.gelu(x, approximate=False),
    keras.activations.relu: tf.nn.relu,
    keras.activations.tanh: tf.nn.tanh,
    keras.activations.linear: tf.identity,
}


@dataclass(frozen=True)
class ScaledActivation:
    """`function(x) == factor * activation(x)`, never below `low` (None: no
    bound known): the int8 feed-forward's next product takes the factor back
    and the bound as its input range's low end for free (`int8_dense`'s
    `x_scale` and `low`)."""

    function: Callable[[tf.Tensor], tf.Tensor]
    factor: float = 1.0
    low: float | None = None


def doubled_tanh_gelu(x: tf.Tensor) -> tf.Tensor:
    """`2 * gelu_approximate(x)` as `x + x * tanh(x * (c + 0.044715 c x^2))`,
    `c = sqrt(2 / pi)`: 7 element-wise ops over `x` where `tf.nn.gelu` runs 9."""
    c = float(np.sqrt(2.0 / np.pi))
    return x + x * tf.tanh(x * (c + 0.044715 * c * tf.square(x)))


# The minimum of gelu_approximate, -0.170041 at x = -0.7525, rounded down.
_TANH_GELU_LOW = -0.17005

# Keras activations -> their scaled form for int8 blocks; others run as they are.
_INT8_ACTIVATIONS: dict[Callable, ScaledActivation] = {
    gelu_approximate: ScaledActivation(doubled_tanh_gelu, 2.0, 2.0 * _TANH_GELU_LOW),
    keras.activations.relu: ScaledActivation(tf.nn.relu, 1.0, 0.0),
}


def layer_norm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, epsilon: float) -> tf.Tensor:
    """LayerNorm over the last axis of float32 `x` [rows, width], written as
    Keras 2's fused LayerNormalization so that oneDNN builds fuse it into one
    `_MklLayerNorm` kernel (the remapper's `layer_norm_pattern_1`)."""
    rows = tf.shape(x)[0]
    normed, _, _ = tf.compat.v1.nn.fused_batch_norm(
        tf.reshape(x, [1, rows, x.shape[-1], 1]),
        scale=tf.fill([rows], 1.0),
        offset=tf.fill([rows], 0.0),
        epsilon=epsilon,
        data_format="NCHW",
    )
    return tf.reshape(normed, tf.shape(x)) * tf.cast(gamma, tf.float32) + tf.cast(beta, tf.float32)


def _activation(function: Callable, int8: bool) -> ScaledActivation:
    if int8:
        return _INT8_ACTIVATIONS.get(function, ScaledActivation(function))
    return ScaledActivation(_FUSABLE_ACTIVATIONS.get(function, function))


@dataclass
class FusedEncoderLayer:
    """One `keras_hub.layers.TransformerEncoder` (post-LayerNorm, BERT's
    block) as fusable ops; call it as the layer is called.

    Args:
        layer: a built encoder layer with `normalize_first=False`.
        int8: run the Q/K/V, attention-output and feed-forward projections
            as dynamic int8 products (`kner.serving.int8`); float32 layers only.

    Raises:
        ValueError: if the layer normalizes first (pre-LN blocks are not BERT's).
    """

    layer: keras_hub.layers.TransformerEncoder
    int8: bool = False
    variables: list[tf.Variable] = field(init=False)
    unread: list[tf.Variable] = field(init=False)

    def __post_init__(self) -> None:
        layer = self.layer
        if layer.normalize_first:
            raise ValueError(f"{layer.name}: normalize_first=True is not a BERT block")
        attention = layer._self_attention_layer
        self.num_heads, self.head_dim = attention._num_heads, attention._key_dim
        self.hidden = self.num_heads * self.head_dim
        projections = (attention._query_dense, attention._key_dense, attention._value_dense)
        kernels = [np.reshape(dense.kernel.numpy(), [self.hidden, self.hidden]) for dense in projections]
        qkv_biases = [np.reshape(dense.bias.numpy(), [self.hidden]) for dense in projections]
        dtype = attention._query_dense.kernel.dtype
        if self.int8 and dtype != "float32":
            raise ValueError(f"{layer.name}: int8 projections quantize a float32 layer, not a {dtype} one")
        # The block's biases in one variable, split at each call: a variable
        # costs a served call four ops (handle, identity, the chunking cond's
        # Switch, read), a split one for all (bench/README.md, "Where a
        # serving call's time goes"). Not the LayerNorm weights: Grappler's
        # remapper (TF 2.21) builds a wrong `_MklLayerNorm` from a split's
        # outputs when shapes are unknown (tests/serving/test_fused_encoder.py).
        biases = [
            attention._output_dense.bias,
            layer._feedforward_intermediate_dense.bias,
            layer._feedforward_output_dense.bias,
        ]
        if any(bias.dtype != dtype for bias in biases):
            raise ValueError(f"{layer.name}: the biases must all be {dtype}")
        values = [np.concatenate(qkv_biases)] + [np.reshape(bias.numpy(), [-1]) for bias in biases]
        self.bias_sizes = [value.size for value in values]
        self.biases = tf.Variable(np.concatenate(values), dtype=dtype, trainable=False, name="biases")
        self.unread = [weight.value for dense in projections for weight in (dense.kernel, dense.bias)]
        self.unread += [bias.value for bias in biases]
        others = {
            "output": attention._output_dense.kernel,
            "inner": layer._feedforward_intermediate_dense.kernel,
            "outer": layer._feedforward_output_dense.kernel,
        }
        qkv = np.concatenate(kernels, axis=1)
        self.inner_transposed = not self.int8 and dtype == "float32"
        if self.int8:
            self.kernels = {"qkv": QuantizedKernel.from_float(qkv, "qkv_kernel")}
            for name, kernel in others.items():
                matrix = np.reshape(kernel.numpy(), [-1, kernel.shape[-1]])
                self.kernels[name] = QuantizedKernel.from_float(matrix, f"{name}_kernel")
            self.unread += [kernel.value for kernel in others.values()]
            joint = [variable for kernel in self.kernels.values() for variable in kernel.variables]
        else:
            # In float32 the feed-forward's widening kernel [hidden,
            # intermediate] is kept transposed: at a few dozen rows oneDNN's
            # float32 product runs 1.3-1.6x faster with it; its bfloat16 one
            # 1.9x slower (BUILD.md, "The feed-forward's widening kernel is
            # stored transposed").
            self.kernels = {"qkv": tf.Variable(qkv, dtype=dtype, trainable=False, name="qkv_kernel")}
            if self.inner_transposed:
                inner = others.pop("inner")
                transposed = np.transpose(inner.numpy())
                self.kernels["inner"] = tf.Variable(transposed, trainable=False, name="inner_kernel_transposed")
                self.unread.append(inner.value)
            joint = list(self.kernels.values())
            self.kernels |= {name: kernel.value for name, kernel in others.items()}
        self.variables = [*joint, self.biases]
        self.compute_dtype = attention._query_dense.compute_dtype
        self.scale = 1.0 / float(np.sqrt(self.head_dim))
        self.activation = _activation(layer.activation, self.int8)

    def _dense(
        self, x: tf.Tensor, name: str, bias: tf.Tensor, low: float | None = None, x_scale: float = 1.0
    ) -> tf.Tensor:
        """`x @ kernel + bias` for the kernel `name` (qkv, output, inner,
        outer): in the projections' dtype (`_FusedMatMul`), or int8 with
        `int8_dense`'s `low` and `x_scale` (a `ScaledActivation`'s bound and
        1 / factor; float activations have factor 1 and need neither)."""
        kernel = self.kernels[name]
        if self.int8:
            return int8_dense(x, kernel, bias, low=low, x_scale=x_scale)
        if kernel.shape.rank != 2:  # the attention output's [heads, head_dim, hidden]
            kernel = tf.reshape(kernel, [self.hidden, -1])
        transposed = name == "inner" and self.inner_transposed
        product = tf.matmul(tf.cast(x, self.compute_dtype), kernel, transpose_b=transposed)
        return tf.nn.bias_add(product, bias)

    def __call__(
        self, inputs: tf.Tensor, padding_mask: tf.Tensor | None = None, attention_mask=None, **training
    ) -> tf.Tensor:
        """`inputs` [batch, length, hidden] -> the block's output, same shape
        and dtype; `padding_mask` [batch, length] (True or 1 = token).

        Raises:
            ValueError: for an `attention_mask` (kner's backbones pass none).
        """
        if attention_mask is not None:
            raise ValueError(f"{self.layer.name}: the fused serving layer takes a padding_mask only")
        layer = self.layer
        batch, length = tf.shape(inputs)[0], tf.shape(inputs)[1]
        x = tf.reshape(tf.cast(inputs, tf.float32), [-1, self.hidden])

        qkv_bias, output_bias, inner_bias, outer_bias = tf.split(self.biases, self.bias_sizes)
        qkv = self._dense(x, "qkv", qkv_bias)
        qkv = tf.transpose(tf.reshape(qkv, [batch, length, 3, self.num_heads, self.head_dim]), [2, 0, 3, 1, 4])
        query, key, value = tf.unstack(qkv)  # [batch, heads, length, head_dim] each
        scores = tf.cast(tf.matmul(query, key, transpose_b=True), tf.float32) * self.scale
        if padding_mask is not None:
            keep = tf.cast(padding_mask, tf.bool)[:, None, None, :]
            scores = tf.where(keep, scores, -1e9)  # Keras's masked softmax
        context = tf.matmul(tf.nn.softmax(scores), tf.cast(value, tf.float32))
        context = tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [-1, self.hidden])
        attended = self._dense(context, "output", output_bias)
        norm = layer._self_attention_layer_norm
        x = layer_norm(tf.cast(attended, tf.float32) + x, norm.gamma.value, norm.beta.value, norm.epsilon)

        hidden = self.activation.function(self._dense(x, "inner", inner_bias))
        fed = self._dense(hidden, "outer", outer_bias, self.activation.low, 1.0 / self.activation.factor)
        norm = layer._feedforward_layer_norm
        x = layer_norm(tf.cast(fed, tf.float32) + x, norm.gamma.value, norm.beta.value, norm.epsilon)
        return tf.cast(tf.reshape(x, tf.shape(inputs)), layer.compute_dtype)


@dataclass
class FusedEncoder:
    """What `fuse_encoder_layers` did: its layers, the variables it added
    (the joint Q/K/V kernels, each block's joint biases) and those no
    longer read (the separate query/key/value weights and biases), for
    choosing what a SavedModel keeps."""

    layers: list[FusedEncoderLayer]

    @property
    def variables(self) -> list[tf.Variable]:
        return [variable for fused in self.layers for variable in fused.variables]

    @property
    def unread(self) -> list[tf.Variable]:
        return [variable for fused in self.layers for variable in fused.unread]

    def saved_variables(self, model: keras.Model) -> list[tf.Variable]:
        """The tf.Variables a SavedModel of `model` (whose backbone this
        fused) needs: the model's, less the unread ones, plus the joint ones."""
        unread = {id(variable) for variable in self.unread}
        return [v.value for v in model.variables if id(v.value) not in unread] + self.variables


def fuse_encoder_layers(backbone: keras.Model, int8: bool = False) -> FusedEncoder:
    """Makes every `keras_hub.layers.TransformerEncoder` of `backbone` run as
    a `FusedEncoderLayer`, in place (for inference only: no dropout, no
    gradients to the separate query/key/value weights). A layer shared by
    several positions (ALBERT) is fused once.

    Args:
        backbone: a built BERT, ALBERT or ELECTRA backbone (any of
            `kner.backbones`), float32 or `kner.serving.bfloat16`.
        int8: dynamic int8 projections (`FusedEncoderLayer`); float32 only.

    Raises:
        ValueError: for int8 with oneDNN turned off (`kner.serving.int8.check_onednn`).

    Returns:
        The `FusedEncoder`; its `variables` must be saved with the model.
    """
    if int8:
        check_onednn()
    layers = []
    for layer in backbone._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras_hub.layers.TransformerEncoder):
            fused = FusedEncoderLayer(layer, int8)
            layer.call = fused
            layers.append(fused)
    return FusedEncoder(layers)
