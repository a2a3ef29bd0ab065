"""Dynamic int8 quantization of the serving encoder's projections.

The recipe is ONNX Runtime's `quantize_dynamic` default (QInt8 weights,
per tensor), the anchor kner's serving is measured against: each projection's
kernel is stored as int8 with one symmetric scale, `round(W * 127 / max|W|)`;
at every call its input is quantized to uint8 over that input's own range
(asymmetric, the range widened to hold 0, as ONNX `DynamicQuantizeLinear`),
the product runs on int8 and comes back as float32 with the bias added.

The product is TensorFlow's `QuantizedMatMulWithBiasAndDequantize`, a oneDNN
u8 x s8 inner product: a core op whose only working kernel is oneDNN's.
The `tensorflow` wheel and its C library (`libtensorflow_cc.so.2`) turn
oneDNN on by default only on x86 CPUs with AVX512-VNNI, AVX512-BF16 or AMX
(TensorFlow 2.9's release notes; `IsMKLEnabled` in tensorflow/core/util/util.cc);
elsewhere, with `TF_ENABLE_ONEDNN_OPTS=0`, or in a server built without
oneDNN, the op runs an empty kernel and the call fails ("Missing 0-th
output"), so `check_onednn` refuses to build int8 layers in such a process
and `TF_ENABLE_ONEDNN_OPTS=1` turns oneDNN on. With VNNI (`vpdpbusd`) the
integer product is exact; on AVX2 without it, oneDNN sums each pair of u8 x s8
products in int16 (`vpmaddubsw`), which saturates when both pairs are large
and of one sign: rare, and the same as ONNX Runtime's AVX2 kernel, whose
`quantize_dynamic(reduce_range=True)` is its answer. The input goes in "SCALED"
mode as `round((x - min) * 255 / (max - min))` and the shift comes back
through the bias, `b + min * colsum(W)`, exact up to rounding: the kernel's
own MIN_FIRST compensation sums the weight columns on every call in one
thread and, in oneDNN 3 builds, adds that integer sum to the float bias
unscaled (tensorflow/core/kernels/mkl/mkl_qmatmul_op.cc).

The int8 kernels are graph constants, not variables: oneDNN reorders a
weight into its blocked layout on every call unless the weight input is a
constant (`is_weight_const`, which TensorFlow's oneDNN rewrite sets for a
`Const` input), and then reorders it once and keeps it, as ONNX Runtime
pre-packs a constant MatMul weight. Measured on 2 cores of an AMD EPYC
(AVX2, no VNNI), one thread, a 48x768x3072 product: 2.67 ms with a
variable weight, 1.81 ms with a constant one (BUILD.md, "The int8 kernels
are graph constants"). The kernels are saved in the SavedModel's graph
(`saved_model.pb`), once per traced function that calls them
(`kner.serving.text_tagger.traced_once` keeps that to one).

Example:
>>> kernel = QuantizedKernel.from_float(np.random.normal(size=(256, 1024)))
>>> x = quantize_input(tf.random.normal((40, 256)))   # once for any number of products
>>> y = int8_matmul(x, kernel, tf.zeros(1024))   # [40, 1024] float32
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
from tensorflow.python.util import _pywrap_util_port


def onednn_enabled() -> bool:
    """Whether this process's TensorFlow runs its oneDNN kernels: what
    `TF_ENABLE_ONEDNN_OPTS` says when it is set, else TensorFlow's default
    for this CPU (on with AVX512-VNNI, AVX512-BF16 or AMX). Fixed when
    TensorFlow loads."""
    return bool(_pywrap_util_port.IsMklEnabled())


def check_onednn() -> None:
    """Raises ValueError when this process runs TensorFlow with oneDNN off,
    where the int8 product has no working kernel."""
    if onednn_enabled():
        return
    why = (
        "TF_ENABLE_ONEDNN_OPTS=0 turns them off"
        if os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0"
        else "TensorFlow leaves them off on a CPU without AVX512-VNNI, AVX512-BF16 or AMX"
    )
    raise ValueError(
        f"int8 needs TensorFlow's oneDNN kernels, and {why}: run with TF_ENABLE_ONEDNN_OPTS=1 "
        "(in the server too), or export with --compute_dtype=float32 or bfloat16"
    )


@dataclass
class QuantizedKernel:
    """A `[in, out]` matmul kernel as int8 values with one float scale.

    Attributes:
        values: int8 `[in, out]`, `round(W / scale)`, in [-127, 127]: a
            constant of the graph that calls `int8_dense` (module doc).
        scale: `max|W| / 127` (1.0 for an all-zero kernel).
        column_sums: float32 `[out]`, the column sums of the dequantized
            kernel (`values * scale`), for moving an input's zero point into
            the bias.
    """

    values: np.ndarray
    scale: float
    column_sums: tf.Variable

    @classmethod
    def from_float(cls, kernel: np.ndarray, name: str = "kernel") -> QuantizedKernel:
        """Quantizes a float `[in, out]` kernel; its column sums are the
        variable `{name}_column_sums`."""
        kernel = np.asarray(kernel, np.float32)
        largest = float(np.abs(kernel).max())
        scale = largest / 127.0 if largest > 0 else 1.0
        values = np.clip(np.round(kernel / scale), -127, 127).astype(np.int8)
        sums = values.astype(np.float32).sum(axis=0) * np.float32(scale)
        return cls(values, scale, tf.Variable(sums, trainable=False, name=f"{name}_column_sums"))

    @property
    def variables(self) -> list[tf.Variable]:
        return [self.column_sums]


@dataclass(frozen=True)
class QuantizedInput:
    """A float32 `[rows, in]` input quantized to uint8 over `[low, low + width]`
    (`quantize_input`), ready for any number of `int8_matmul`s.

    Attributes:
        values: quint8 `[rows, in]`, `round((x - low) * 255 / width)`.
        low: float32 scalar, at most 0.
        width: float32 scalar, above 0.
    """

    values: tf.Tensor
    low: tf.Tensor
    width: tf.Tensor


def quantize_input(x: tf.Tensor, low: float | None = None) -> QuantizedInput:
    """`x` quantized to uint8 over its range, widened to hold 0.

    The quantization is `round((x - min) * 255 / (max - min))` written as one
    multiply-add and a truncating cast, `uint8(x * s + (0.5 - min * s))`:
    three passes over `x` instead of four (and no oneDNN `QuantizeV2`, whose
    fixed cost per call was about 40 µs with one thread and 150-190 with two
    at 4L/256, one sentence a call).

    Args:
        x: float32 `[rows, in]`.
        low: a lower bound of `x`, at most 0 (an activation's minimum,
            rounded down; 0 after a ReLU), taken as its range's low end
            instead of `min(x, 0)`: one pass over `x` fewer. `x` must not go
            below it.
    """
    low = tf.minimum(tf.reduce_min(x), 0.0) if low is None else tf.constant(low, tf.float32)
    width = tf.maximum(tf.maximum(tf.reduce_max(x), 0.0) - low, 1e-30)
    steps = 255.0 / width
    values = tf.bitcast(tf.cast(x * steps + (0.5 - low * steps), tf.uint8), tf.quint8)
    return QuantizedInput(values, low, width)


def int8_matmul(x: QuantizedInput, kernel: QuantizedKernel, bias: tf.Tensor, x_scale: float = 1.0) -> tf.Tensor:
    """`(x_scale * x) @ W + bias` for a quantized input and kernel.

    Args:
        x: the quantized `[rows, in]` input.
        kernel: the quantized `[in, out]` kernel.
        bias: float32 `[out]`, or a scalar.
        x_scale: a constant factor of `x`, applied in the dequantization for free.

    Returns:
        float32 `[rows, out]`; off the float product by about 1% of its
        largest value (tests/serving/test_int8.py).
    """
    return tf.raw_ops.QuantizedMatMulWithBiasAndDequantize(
        a=x.values,
        b=tf.bitcast(tf.constant(kernel.values), tf.qint8),
        bias=bias + (x.low * x_scale) * kernel.column_sums,
        min_a=0.0,
        max_a=x.width * x_scale,
        min_b=-kernel.scale * 127.0,
        max_b=kernel.scale * 127.0,
        min_freezed_output=0.0,
        max_freezed_output=0.0,
        Toutput=tf.float32,
        input_quant_mode="SCALED",
    )
