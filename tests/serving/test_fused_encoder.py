import json
from collections import Counter

import keras
import keras_hub
import numpy as np
import pytest
import tagger_dirs
import tensorflow as tf
from onednn import BFLOAT16_UNFUSED, BFLOAT16_UNFUSED_REASON, ONEDNN_OFF, ONEDNN_OFF_REASON
from served_session import served_call
from test_bfloat16 import INPUTS, tagger

from kner.serving.bfloat16 import bfloat16_matmuls
from kner.serving.fused_encoder import _INT8_ACTIVATIONS, FusedEncoderLayer, fuse_encoder_layers
from kner.serving.saved_model import export_model
from kner.serving.text_tagger import TextTagger


@pytest.mark.parametrize("activation", [keras_hub.src.utils.keras_utils.gelu_approximate, keras.activations.relu])
def test_the_int8_activations_are_their_factor_times_the_activation_and_keep_their_bound(activation):
    scaled = _INT8_ACTIVATIONS[activation]
    x = tf.constant(np.concatenate([np.linspace(-12, 12, 200_001), [-0.7525, 30.0, -30.0]]), tf.float32)
    got = scaled.function(x).numpy()
    # x + x * tanh(...) cancels for x << 0: a few float32 ulps of x, far below a quantization step.
    np.testing.assert_allclose(got, scaled.factor * activation(x).numpy(), rtol=1e-5, atol=1e-5)
    assert got.min() >= scaled.low and got.min() < scaled.low + 1e-4  # a bound, and a tight one


FAMILIES = ["bert", "albert", "albert_brightmart", "electra"]


def tokens(scores: np.ndarray) -> np.ndarray:
    """The scores of real tokens after [CLS], the head's positions (padding's are unspecified)."""
    return scores[INPUTS["padding_mask"].numpy()[:, 1:]]


@pytest.mark.parametrize("family,parts", [(family, 1) for family in FAMILIES] + [("bert", 2), ("albert", 2)])
def test_fused_layers_compute_what_keras_computes_in_float32(family, parts):
    keras.utils.set_random_seed(5)
    model = tagger(family, "float32")
    expected = tokens(model(INPUTS).numpy())
    fused = fuse_encoder_layers(model.backbone, parts=parts)

    np.testing.assert_allclose(tokens(model(INPUTS).numpy()), expected, rtol=1e-5, atol=1e-5)
    # Traced with unknown shapes, as in a SavedModel, where Grappler rewrites
    # the fusable patterns (it once built a wrong LayerNorm from split weights).
    spec = {name: tf.TensorSpec([None, None], value.dtype) for name, value in INPUTS.items()}
    traced = tf.function(lambda inputs: model(inputs), input_signature=[spec])
    np.testing.assert_allclose(tokens(traced(INPUTS).numpy()), expected, rtol=1e-5, atol=1e-5)
    # ALBERT runs one block at every position: it is fused once.
    blocks = model.backbone._flatten_layers(include_self=False)
    distinct = {id(layer) for layer in blocks if isinstance(layer, keras_hub.layers.TransformerEncoder)}
    assert len(fused.layers) == len(distinct) >= 1


@pytest.mark.parametrize("family,parts", [(family, 1) for family in FAMILIES] + [("bert", 2)])
def test_fused_bfloat16_layers_stay_as_close_to_float32_as_keras(family, parts):
    keras.utils.set_random_seed(6)
    reference = tagger(family, "float32")
    expected = tokens(reference(INPUTS).numpy())
    model = tagger(family, "bfloat16")
    model.set_weights(reference.get_weights())
    bfloat16_matmuls(model)
    keras_error = np.abs(tokens(model(INPUTS).numpy()) - expected).mean()
    fuse_encoder_layers(model.backbone, parts=parts)

    fused_error = np.abs(tokens(model(INPUTS).numpy()) - expected).mean()
    assert fused_error < 1.5 * keras_error + 1e-4, (fused_error, keras_error)
    assert {variable.dtype for variable in fuse_encoder_layers(model.backbone).variables} == {tf.bfloat16}


def test_padding_does_not_change_a_rows_output():
    keras.utils.set_random_seed(7)
    model = tagger("bert", "float32")
    fuse_encoder_layers(model.backbone)
    padded = model(INPUTS).numpy()
    alone = model({name: value[1:2, :3] for name, value in INPUTS.items()}).numpy()
    np.testing.assert_allclose(padded[1, :2], alone[0], rtol=1e-5, atol=1e-5)


@pytest.mark.slow
@pytest.mark.skipif(ONEDNN_OFF, reason=ONEDNN_OFF_REASON)
@pytest.mark.parametrize(
    "compute_dtype,parts",
    [
        ("float32", 1),
        ("float32", 2),
        pytest.param("bfloat16", 1, marks=pytest.mark.skipif(BFLOAT16_UNFUSED, reason=BFLOAT16_UNFUSED_REASON)),
    ],
)
def test_the_served_graph_runs_fused_kernels(tmp_path, compute_dtype, parts):
    """In a TF1 session over the SavedModel, as TF Serving runs it: Q/K/V,
    attention output and both feed-forward matmuls run as fused matmuls
    (GELU inside), once per part, the blocks' LayerNorms as one kernel each."""
    model_dir = tagger_dirs.cached_model_dir(tmp_path, "plain", max_seq_length=16)
    version = export_model(model_dir, tmp_path / "export", compute_dtype=compute_dtype, tensor_parallel=parts)
    metadata = served_call(version, ["张三在北京", "李四"], trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
    nodes = [node for device in metadata.step_stats.dev_stats for node in device.node_stats]
    ran = Counter(node.timeline_label.split(" = ")[-1].split("(")[0] for node in nodes)
    in_blocks = Counter(
        node.timeline_label.split(" = ")[-1].split("(")[0] for node in nodes if "/transformer_layer_" in node.node_name
    )
    layers = json.loads((model_dir / "bert_config.json").read_text())["num_hidden_layers"]
    fused_matmuls = sum(count for op, count in in_blocks.items() if "FusedMatMul" in op)
    # Per part: Q/K/V and the widening product fused with their bias (and
    # GELU); the narrowing ones fused with part 0's bias, bare otherwise.
    assert fused_matmuls == (2 * parts + 2) * layers, in_blocks
    assert in_blocks["_MklMatMul"] + in_blocks["MatMul"] == 2 * (parts - 1) * layers, in_blocks
    assert ran["_MklLayerNorm"] == 2 * layers, ran
    assert not {"FusedBatchNormV3", "Tanh", "Erf"} & set(ran), ran


def test_a_saved_module_keeps_the_joint_projections_only():
    model = tagger("bert", "float32")
    first = model.backbone.transformer_layers[0]
    query_kernel = first._self_attention_layer._query_dense.kernel.value
    inner_kernel = first._feedforward_intermediate_dense.kernel.value
    fused = fuse_encoder_layers(model.backbone)
    module = TextTagger(model, tokenizer=None, max_seq_length=16, variables=fused.saved_variables(model))

    saved = {id(variable) for variable in module.model_variables}
    assert id(query_kernel) not in saved and id(inner_kernel) not in saved
    assert {id(variable) for variable in fused.variables} <= saved
    # Per layer, 6 separate Q/K/V weights and 3 other biases -> a joint Q/K/V kernel and one vector of
    # biases; the feed-forward's widening kernel -> the same kernel transposed.
    assert len(saved) == len(model.variables) - 7 * len(fused.layers)
    np.testing.assert_array_equal(fused.layers[0].kernels["inner"][0].numpy(), inner_kernel.numpy().T)


def test_bfloat16_layers_keep_the_widening_kernel_untransposed():
    """Transposed, oneDNN's bfloat16 product ran 1.9x slower (BUILD.md)."""
    model = tagger("bert", "bfloat16")
    bfloat16_matmuls(model)
    inner_kernel = model.backbone.transformer_layers[0]._feedforward_intermediate_dense.kernel.value
    fused = fuse_encoder_layers(model.backbone)

    kernel = fused.layers[0].kernels["inner"][0]
    assert kernel.shape == inner_kernel.shape and kernel.dtype == inner_kernel.dtype == tf.bfloat16


def test_parts_split_the_heads_and_the_feed_forward():
    """Part p of a 2-part block: its head's Q/K/V columns and the output
    kernel's rows for that head; its half of the intermediate units."""
    model = tagger("bert", "float32")
    block = model.backbone.transformer_layers[0]
    attention = block._self_attention_layer
    fused = fuse_encoder_layers(model.backbone, parts=2).layers[0]

    half = attention._key_dim  # 2 heads: one per part
    query = attention._query_dense.kernel.numpy().reshape(-1, 2 * half)
    value = attention._value_dense.kernel.numpy().reshape(-1, 2 * half)
    second = fused.kernels["qkv"][1].numpy()
    np.testing.assert_array_equal(second[:, :half], query[:, half:])
    np.testing.assert_array_equal(second[:, 2 * half :], value[:, half:])
    output = attention._output_dense.kernel.numpy().reshape(2 * half, -1)
    np.testing.assert_array_equal(fused.kernels["output"][1].numpy(), output[half:])
    inner = block._feedforward_intermediate_dense.kernel.numpy()
    np.testing.assert_array_equal(fused.kernels["inner"][0].numpy(), inner[:, :32].T)  # stored transposed
    outer = block._feedforward_output_dense.kernel.numpy()
    np.testing.assert_array_equal(fused.kernels["outer"][1].numpy(), outer[32:])


@pytest.mark.parametrize("parts", [0, 3])
def test_parts_that_do_not_divide_the_heads_are_refused(parts):
    model = tagger("bert", "float32")
    with pytest.raises(
        ValueError, match=rf"{parts} parts \(--tensor_parallel\) must divide the 2 heads and the 64 intermediate units"
    ):
        FusedEncoderLayer(model.backbone.transformer_layers[0], parts=parts)


def test_a_pre_layer_norm_block_is_refused():
    block = keras_hub.layers.TransformerEncoder(intermediate_dim=8, num_heads=2, normalize_first=True)
    block(tf.zeros([1, 3, 4]))
    with pytest.raises(ValueError, match="normalize_first"):
        FusedEncoderLayer(block)


def test_an_attention_mask_is_refused():
    model = tagger("bert", "float32")
    fused = fuse_encoder_layers(model.backbone)
    with pytest.raises(ValueError, match="padding_mask only"):
        fused.layers[0](tf.zeros([1, 3, 32]), attention_mask=tf.ones([1, 3, 3], tf.bool))
