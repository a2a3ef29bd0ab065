import json
from collections import Counter

import keras
import numpy as np
import pytest
import tagger_dirs
import tensorflow as tf
from onednn import INT16_PAIR_SUMS, ONEDNN_OFF, ONEDNN_OFF_REASON
from served_session import served_call
from tensorflow.core.protobuf import saved_model_pb2
from test_bfloat16 import INPUTS, tagger

from kner.errors import InputError
from kner.serving import int8
from kner.serving.fused_encoder import fuse_encoder_layers
from kner.serving.int8 import QuantizedKernel, int8_matmul, quantize_input
from kner.serving.predictor import Predictor
from kner.serving.saved_model import SOURCE, export_model

# The quantized product is a oneDNN kernel: with oneDNN off it has no working kernel.
needs_onednn = pytest.mark.skipif(ONEDNN_OFF, reason=ONEDNN_OFF_REASON)


def quantized_reference(
    x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, low: float | None = None, x_scale: float = 1.0
) -> np.ndarray:
    """The recipe in NumPy: int8 weights over max|W|, uint8 inputs over
    [min(x, 0) or `low`, max(x, 0)], integer products, dequantized, times
    `x_scale`."""
    scale = np.abs(kernel).max() / 127
    weights = np.round(kernel / scale)
    low = min(x.min(), 0.0) if low is None else low
    high = max(x.max(), 0.0)
    step = (high - low) / 255
    inputs = np.round((x.astype(np.float64) - low) / step)
    if INT16_PAIR_SUMS:  # AVX2 without VNNI: each pair of products summed in int16, saturating
        pairs = inputs[:, 0::2, None] * weights[0::2] + inputs[:, 1::2, None] * weights[1::2]
        products = np.clip(pairs, -(2**15), 2**15 - 1).sum(axis=1)
    else:
        products = inputs @ weights
    return x_scale * (products * step * scale + low * (weights.sum(0) * scale)) + bias


@needs_onednn
@pytest.mark.parametrize(("rows", "width", "out"), [(1, 8, 4), (40, 256, 96), (7, 64, 200)])
def test_int8_matmul_is_the_quantized_product(rows, width, out):
    rng = np.random.default_rng(rows)
    x = rng.normal(size=(rows, width)).astype(np.float32) + 0.3
    kernel = (rng.normal(size=(width, out)) * 0.05).astype(np.float32)
    bias = rng.normal(size=out).astype(np.float32)
    got = int8_matmul(quantize_input(tf.constant(x)), QuantizedKernel.from_float(kernel), tf.constant(bias)).numpy()

    largest = np.abs(x @ kernel + bias).max()
    np.testing.assert_allclose(got, quantized_reference(x, kernel, bias), atol=1e-4 * largest)
    assert np.abs(got - (x @ kernel + bias)).max() < 0.03 * largest  # int8's error, not a wrong formula


@needs_onednn
def test_a_known_lower_bound_and_a_factor_of_the_input():
    """`low` replaces min(x); `x_scale` multiplies x."""
    rng = np.random.default_rng(3)
    x = np.maximum(rng.normal(size=(24, 64)), -0.2).astype(np.float32)
    kernel = (rng.normal(size=(64, 32)) * 0.05).astype(np.float32)
    bias = rng.normal(size=32).astype(np.float32)
    got = int8_matmul(
        quantize_input(tf.constant(x), low=-0.25), QuantizedKernel.from_float(kernel), tf.constant(bias), 0.5
    )

    expected = quantized_reference(x, kernel, bias, low=-0.25, x_scale=0.5)
    largest = np.abs(0.5 * x @ kernel + bias).max()
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-4 * largest)
    assert np.abs(got.numpy() - (0.5 * x @ kernel + bias)).max() < 0.03 * largest


@needs_onednn
def test_inputs_of_one_sign_and_zero_inputs():
    kernel = QuantizedKernel.from_float(np.eye(3, dtype=np.float32))
    bias = tf.constant([1.0, 2.0, 3.0])
    for x in ([[0.5, 1.0, 2.0]], [[-0.5, -1.0, -2.0]]):
        np.testing.assert_allclose(
            int8_matmul(quantize_input(tf.constant(x)), kernel, bias).numpy(), np.add(x, bias), atol=0.02
        )
    np.testing.assert_array_equal(int8_matmul(quantize_input(tf.zeros([2, 3])), kernel, bias).numpy(), [[1, 2, 3]] * 2)


def test_a_zero_kernel_quantizes_to_zeros():
    kernel = QuantizedKernel.from_float(np.zeros((4, 2)))
    assert kernel.scale == 1.0 and not kernel.values.any()


@needs_onednn
@pytest.mark.parametrize("family,parts", [("bert", 1), ("albert", 1), ("electra", 1), ("bert", 2)])
def test_int8_layers_stay_near_float32_and_save_no_float_kernels(family, parts):
    keras.utils.set_random_seed(8)
    model = tagger(family, "float32")
    mask = INPUTS["padding_mask"].numpy()[:, 1:]
    expected = model(INPUTS).numpy()[mask]
    fused = fuse_encoder_layers(model.backbone, int8=True, parts=parts)

    got = model(INPUTS).numpy()[mask]
    assert np.abs(got - expected).max() < 0.05 * np.abs(expected).max()
    # The four projection kernels of each block are int8 graph constants; no float kernel is saved.
    kernels = [kernel for layer in fused.layers for parts in layer.kernels.values() for kernel in parts]
    assert len(kernels) == 4 * parts * len(fused.layers) and all(kernel.values.dtype == np.int8 for kernel in kernels)
    assert not any(v.dtype == tf.int8 for v in fused.variables)
    saved = {id(v) for v in fused.saved_variables(model)}
    assert not any(id(v) in saved for v in fused.unread)
    block = fused.layers[0].layer
    assert id(block._feedforward_intermediate_dense.kernel.value) not in saved


def test_int8_needs_a_float32_layer(monkeypatch):
    monkeypatch.setattr(int8, "onednn_enabled", lambda: True)  # checked first
    with pytest.raises(ValueError, match="float32 layer, not a bfloat16"):
        fuse_encoder_layers(tagger("bert", "bfloat16").backbone, int8=True)


@pytest.mark.parametrize(
    ("setting", "why"),
    [("0", "TF_ENABLE_ONEDNN_OPTS=0 turns them off"), (None, "on a CPU without AVX512-VNNI, AVX512-BF16 or AMX")],
)
def test_int8_with_onednn_off_is_refused(monkeypatch, setting, why):
    monkeypatch.setattr(int8, "onednn_enabled", lambda: False)
    if setting is None:
        monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    else:
        monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", setting)
    with pytest.raises(ValueError, match=f"{why}.*: run with TF_ENABLE_ONEDNN_OPTS=1"):
        fuse_encoder_layers(tagger("bert", "float32").backbone, int8=True)


def test_an_int8_export_is_refused_where_onednn_is_off(monkeypatch, tmp_path):
    """Before loading: otherwise the first call fails inside TensorFlow
    (`Missing 0-th output`)."""
    version = tmp_path / "1"
    (version / SOURCE).parent.mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"")
    (version / SOURCE).write_text(json.dumps({"compute_dtype": "int8"}))
    monkeypatch.setattr(int8, "onednn_enabled", lambda: False)
    with pytest.raises(InputError, match=f"^{version}: int8 needs TensorFlow's oneDNN kernels"):
        Predictor.from_dir(tmp_path)


@pytest.mark.slow
@needs_onednn
def test_the_served_int8_products_take_their_kernels_as_constants_saved_once(tmp_path):
    """In a TF1 session over the SavedModel, as TF Serving runs it, oneDNN
    sees every int8 kernel as a constant (`is_weight_const`: it reorders it
    once, not at every call), and `saved_model.pb` holds each kernel once,
    however many places of the serving graph run the encoder."""
    model_dir = tagger_dirs.cached_model_dir(tmp_path, "plain", max_seq_length=16)
    version = export_model(model_dir, tmp_path / "export", compute_dtype="int8")
    layers = json.loads((model_dir / "bert_config.json").read_text())["num_hidden_layers"]

    proto = saved_model_pb2.SavedModel.FromString((version / "saved_model.pb").read_bytes())
    library = proto.meta_graphs[0].graph_def.library.function
    int8_constants = [
        node
        for function in library
        for node in function.node_def
        if node.op == "Const" and node.attr["dtype"].type == tf.int8.as_datatype_enum
    ]
    assert len(int8_constants) == 4 * layers

    metadata = served_call(version, ["张三在北京", "李四"], output_partition_graphs=True)
    products = Counter(
        node.attr["is_weight_const"].b
        for graph_def in metadata.partition_graphs
        for node in graph_def.node
        if "QuantizedMatMulWithBiasAndDequantize" in node.op
    )
    assert products[True] >= 4 * layers and not products[False], products
