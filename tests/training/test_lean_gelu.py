import keras
import numpy as np
import pytest
import tensorflow as tf
from tagger_dirs import tiny_config

from kner.backbones.encoder import EncoderBackbone
from kner.checkpoint import backbone_from_config
from kner.training.lean_gelu import gelu_erf, gelu_tanh, use_lean_gelu


def value_and_gradient(function, x: tf.Tensor) -> tuple[np.ndarray, np.ndarray]:
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = function(x)
        loss = tf.reduce_sum(y * tf.cos(x))  # a non-uniform upstream gradient
    return y.numpy(), tape.gradient(loss, x).numpy()


@pytest.mark.parametrize("lean, approximate", [(gelu_tanh, True), (gelu_erf, False)])
def test_values_and_gradients_are_keras_gelus(lean, approximate):
    x = tf.constant(np.random.default_rng(0).normal(0, 3, (64, 33)), tf.float32)
    value, gradient = value_and_gradient(lean, x)
    expected_value, expected_gradient = value_and_gradient(lambda t: tf.nn.gelu(t, approximate=approximate), x)
    np.testing.assert_array_equal(value, expected_value)
    np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-5, atol=5e-6)  # float32 rounding, |x| up to 10


def test_backward_pass_does_not_differentiate_the_chain():
    """Keras's GELU is differentiated op by op (the gradient of its `x^3` is
    another Pow, fed by the kept forward tensors); the lean one's gradient is
    the closed form, with no Pow."""

    def pow_ops(function) -> int:
        @tf.function(input_signature=[tf.TensorSpec([None, 8], tf.float32)])
        def gradient(t):
            with tf.GradientTape() as tape:
                tape.watch(t)
                y = function(t)
            return tape.gradient(y, t)

        return sum(op.type == "Pow" for op in gradient.get_concrete_function().graph.get_operations())

    assert pow_ops(lambda t: tf.nn.gelu(t, approximate=True)) > 1
    assert pow_ops(gelu_tanh) == 1  # the forward pass's x^3 only


def model_gradients(backbone, inputs) -> tuple[np.ndarray, list[np.ndarray]]:
    with tf.GradientTape() as tape:
        output = backbone(inputs, training=False)["sequence_output"]
        loss = tf.reduce_sum(output * output)
    gradients = tape.gradient(loss, backbone.trainable_variables)
    return output.numpy(), [tf.convert_to_tensor(g).numpy() for g in gradients if g is not None]  # None: the pooler


@pytest.mark.parametrize("family", ["bert", "electra"])
def test_swapped_backbone_computes_the_same(family):
    keras.utils.set_random_seed(1)
    if family == "bert":
        backbone = backbone_from_config(tiny_config(50, layers=2))
    else:
        dimensions = {"num_layers": 2, "num_heads": 2, "hidden_dim": 16, "intermediate_dim": 32, "embedding_dim": 16}
        backbone = EncoderBackbone("electra", vocabulary_size=50, activation="gelu", **dimensions)
    inputs = {
        "token_ids": tf.constant([[2, 5, 7, 9, 3, 0], [2, 11, 3, 0, 0, 0]]),
        "segment_ids": tf.zeros([2, 6], tf.int32),
        "padding_mask": tf.constant([[1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0]]) > 0,
    }
    before, gradients_before = model_gradients(backbone, inputs)
    assert use_lean_gelu(backbone) == 2  # one feed-forward layer per transformer layer
    assert use_lean_gelu(backbone) == 0  # already swapped
    after, gradients_after = model_gradients(backbone, inputs)
    np.testing.assert_array_equal(after, before)
    for a, b in zip(gradients_after, gradients_before, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
