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
in a form with fewer element-wise passes (`_INT8_ACTIVATIONS`). With
`parts > 1` each block runs as that many independent chains of ops, for one
text on several inter-op threads (`FusedEncoderLayer`). Dropout is
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

from kner.serving.int8 import QuantizedInput, QuantizedKernel, check_onednn, int8_matmul, quantize_input

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
    and the bound as its input range's low end for free (`int8_matmul`'s
    `x_scale`, `quantize_input`'s `low`)."""

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

    With `parts > 1` the block runs as `parts` independent chains of ops
    between its two sums, Megatron-LM's tensor parallelism (Shoeybi et al.
    2019, section 3): each chain takes `1 / parts` of the attention heads
    (its share of the Q/K/V columns and of the output kernel's rows) and of
    the feed-forward's intermediate units (the widening kernel's columns, the
    narrowing kernel's rows); the chains' products are summed before each
    residual sum and LayerNorm. TensorFlow's executor runs independent
    expensive ops on its inter-op threads at once, so with one intra-op
    thread and `parts` inter-op threads one sentence uses `parts` cores
    without the intra-op pool's wake-up per kernel (BUILD.md).

    Args:
        layer: a built encoder layer with `normalize_first=False`.
        int8: run the Q/K/V, attention-output and feed-forward projections
            as dynamic int8 products (`kner.serving.int8`); float32 layers only.
        parts: independent chains per block; divides the heads and the
            intermediate size.

    Raises:
        ValueError: if the layer normalizes first (pre-LN blocks are not
            BERT's), for int8 on a non-float32 layer, or if `parts` does not
            divide the heads and the intermediate size.
    """

    layer: keras_hub.layers.TransformerEncoder
    int8: bool = False
    parts: int = 1
    variables: list[tf.Variable] = field(init=False)
    unread: list[tf.Variable] = field(init=False)

    def __post_init__(self) -> None:
        layer = self.layer
        if layer.normalize_first:
            raise ValueError(f"{layer.name}: normalize_first=True is not a BERT block")
        attention = layer._self_attention_layer
        self.num_heads, self.head_dim = attention._num_heads, attention._key_dim
        self.hidden = self.num_heads * self.head_dim
        intermediate = layer._feedforward_intermediate_dense.kernel.shape[-1]
        if self.parts < 1 or self.num_heads % self.parts or intermediate % self.parts:
            raise ValueError(
                f"{layer.name}: {self.parts} parts (--tensor_parallel) must divide the {self.num_heads} heads "
                f"and the {intermediate} intermediate units"
            )
        dtype = attention._query_dense.kernel.dtype
        if self.int8 and dtype != "float32":
            raise ValueError(f"{layer.name}: int8 projections quantize a float32 layer, not a {dtype} one")
        projections = (attention._query_dense, attention._key_dense, attention._value_dense)
        denses = {
            "output": attention._output_dense,
            "inner": layer._feedforward_intermediate_dense,
            "outer": layer._feedforward_output_dense,
        }
        if any(dense.bias.dtype != dtype for dense in [*projections, *denses.values()]):
            raise ValueError(f"{layer.name}: the biases must all be {dtype}")
        self.unread = [w.value for dense in [*projections, *denses.values()] for w in (dense.kernel, dense.bias)]

        def matrix(dense: keras.layers.Layer, rows: int) -> np.ndarray:
            return np.reshape(dense.kernel.numpy(), [rows, -1])

        def columns(values: np.ndarray) -> list[np.ndarray]:  # each part's share of the last axis
            return np.split(values, self.parts, axis=-1)

        # Part p's Q/K/V kernel: its heads' query, key and value columns, side by side.
        qkv = [np.concatenate(group, axis=-1) for group in zip(*(columns(matrix(d, self.hidden)) for d in projections))]
        qkv_bias = [np.concatenate(group) for group in zip(*(columns(d.bias.numpy().reshape(-1)) for d in projections))]
        parted = {
            "qkv": qkv,
            "output": np.split(matrix(denses["output"], self.hidden), self.parts),
            "inner": columns(matrix(denses["inner"], self.hidden)),
            "outer": np.split(matrix(denses["outer"], intermediate), self.parts),
        }
        # The block's biases in one variable, split at each call: a variable
        # costs a served call four ops (handle, identity, the chunking cond's
        # Switch, read), a split one for all (bench/README.md, "Where a
        # serving call's time goes"). Not the LayerNorm weights: Grappler's
        # remapper (TF 2.21) builds a wrong `_MklLayerNorm` from a split's
        # outputs when shapes are unknown (tests/serving/test_fused_encoder.py).
        values = [*qkv_bias, denses["output"].bias.numpy(), *columns(denses["inner"].bias.numpy())]
        values.append(denses["outer"].bias.numpy())
        self.bias_sizes = [value.size for value in values]
        self.biases = tf.Variable(np.concatenate(values), dtype=dtype, trainable=False, name="biases")
        # In float32 the feed-forward's widening kernel [hidden, intermediate]
        # is kept transposed: at a few dozen rows oneDNN's float32 product
        # runs 1.3-1.6x faster with it; its bfloat16 one 1.9x slower
        # (BUILD.md, "The feed-forward's widening kernel is stored transposed").
        self.inner_transposed = not self.int8 and dtype == "float32"
        if self.inner_transposed:
            parted["inner"] = [np.transpose(kernel) for kernel in parted["inner"]]
        if self.int8:
            self.kernels = {
                name: [QuantizedKernel.from_float(kernel, f"{name}_kernel") for kernel in kernels]
                for name, kernels in parted.items()
            }
            joint = [variable for kernels in self.kernels.values() for k in kernels for variable in k.variables]
        else:

            def variable(name: str, kernel: np.ndarray) -> tf.Variable:
                transposed = "_transposed" if name == "inner" and self.inner_transposed else ""
                return tf.Variable(kernel, dtype=dtype, trainable=False, name=f"{name}_kernel{transposed}")

            self.kernels = {name: [variable(name, kernel) for kernel in kernels] for name, kernels in parted.items()}
            joint = [kernel for kernels in self.kernels.values() for kernel in kernels]
        self.variables = [*joint, self.biases]
        self.compute_dtype = attention._query_dense.compute_dtype
        self.scale = 1.0 / float(np.sqrt(self.head_dim))
        self.activation = _activation(layer.activation, self.int8)

    def _input(self, x: tf.Tensor, low: float | None = None) -> tf.Tensor | QuantizedInput:
        """`x` as `_product` takes it, once for every part: in the
        projections' dtype, or quantized (`quantize_input`, with its `low`)."""
        return quantize_input(x, low) if self.int8 else tf.cast(x, self.compute_dtype)

    def _product(
        self, x: tf.Tensor | QuantizedInput, name: str, part: int, bias: tf.Tensor | None, x_scale: float = 1.0
    ) -> tf.Tensor:
        """`x @ kernel [+ bias]` for part `part` of the kernel `name` (qkv,
        output, inner, outer), `x` from `_input`: a `_FusedMatMul`, or an
        `int8_matmul` with its `x_scale` (1 / a `ScaledActivation`'s factor)."""
        kernel = self.kernels[name][part]
        if self.int8:
            return int8_matmul(x, kernel, 0.0 if bias is None else bias, x_scale)
        product = tf.matmul(x, kernel, transpose_b=name == "inner" and self.inner_transposed)
        return product if bias is None else tf.nn.bias_add(product, bias)

    def _projection(
        self, inputs: list[tf.Tensor], name: str, bias: tf.Tensor, low: float | None = None, x_scale: float = 1.0
    ) -> tf.Tensor:
        """The sum over parts of `inputs[p] @ kernels[name][p]`, plus `bias`,
        in float32 (`low`: a bound of the inputs, as `quantize_input`'s)."""
        partial = [
            tf.cast(self._product(self._input(x, low), name, part, bias if part == 0 else None, x_scale), tf.float32)
            for part, x in enumerate(inputs)
        ]
        return tf.add_n(partial)

    def _attention(self, qkv: tf.Tensor, batch: tf.Tensor, length: tf.Tensor, keep: tf.Tensor | None) -> tf.Tensor:
        """One part's `qkv` [rows, 3 * its width] -> its heads' context [rows, its width]."""
        heads = self.num_heads // self.parts
        qkv = tf.transpose(tf.reshape(qkv, [batch, length, 3, heads, self.head_dim]), [2, 0, 3, 1, 4])
        query, key, value = tf.unstack(qkv)  # [batch, heads, length, head_dim] each
        scores = tf.cast(tf.matmul(query, key, transpose_b=True), tf.float32) * self.scale
        if keep is not None:
            scores = tf.where(keep, scores, -1e9)  # Keras's masked softmax
        context = tf.matmul(tf.nn.softmax(scores), tf.cast(value, tf.float32))
        return tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [-1, heads * self.head_dim])

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
        layer, parts = self.layer, self.parts
        batch, length = tf.shape(inputs)[0], tf.shape(inputs)[1]
        x = tf.reshape(tf.cast(inputs, tf.float32), [-1, self.hidden])
        keep = None if padding_mask is None else tf.cast(padding_mask, tf.bool)[:, None, None, :]

        biases = tf.split(self.biases, self.bias_sizes)
        qkv_biases, output_bias = biases[:parts], biases[parts]
        inner_biases, outer_bias = biases[parts + 1 : -1], biases[-1]
        qkv_input = self._input(x)
        contexts = [
            self._attention(self._product(qkv_input, "qkv", part, bias), batch, length, keep)
            for part, bias in enumerate(qkv_biases)
        ]
        attended = self._projection(contexts, "output", output_bias)
        norm = layer._self_attention_layer_norm
        x = layer_norm(attended + x, norm.gamma.value, norm.beta.value, norm.epsilon)

        inner_input = self._input(x)
        hidden = [
            self.activation.function(self._product(inner_input, "inner", part, bias))
            for part, bias in enumerate(inner_biases)
        ]
        fed = self._projection(hidden, "outer", outer_bias, self.activation.low, 1.0 / self.activation.factor)
        norm = layer._feedforward_layer_norm
        x = layer_norm(fed + x, norm.gamma.value, norm.beta.value, norm.epsilon)
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


def fuse_encoder_layers(backbone: keras.Model, int8: bool = False, parts: int = 1) -> FusedEncoder:
    """Makes every `keras_hub.layers.TransformerEncoder` of `backbone` run as
    a `FusedEncoderLayer`, in place (for inference only: no dropout, no
    gradients to the separate query/key/value weights). A layer shared by
    several positions (ALBERT) is fused once.

    Args:
        backbone: a built BERT, ALBERT or ELECTRA backbone (any of
            `kner.backbones`), float32 or `kner.serving.bfloat16`.
        int8: dynamic int8 projections (`FusedEncoderLayer`); float32 only.
        parts: each block in this many independent parts (`FusedEncoderLayer`,
            `kner.export --tensor_parallel`).

    Raises:
        ValueError: for int8 with oneDNN turned off (`kner.serving.int8.check_onednn`),
            or `parts` that do not divide the heads and the intermediate size.

    Returns:
        The `FusedEncoder`; its `variables` must be saved with the model.
    """
    if int8:
        check_onednn()
    layers = []
    for layer in backbone._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras_hub.layers.TransformerEncoder):
            fused = FusedEncoderLayer(layer, int8, parts)
            layer.call = fused
            layers.append(fused)
    return FusedEncoder(layers)
