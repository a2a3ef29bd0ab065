"""`MaskedLMModel` under `mixed_bfloat16`: the encoder computes in bfloat16,
the masked-LM head (transform and vocab logits), the next-sentence head, the
log-softmax and the losses in float32, and every variable is float32 (the
masked-LM and NSP logits against Google's in NumPy: tests/backbones/test_bert_heads.py; ALBERT's with
SOP: test_albert_pretraining.py)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from tagger_dirs import tiny_config

from kner.checkpoint import backbone_from_config
from kner.models.pretraining import MaskedLMModel, dummy_features

VOCAB = 101  # no other dimension of the tiny config has this size: it marks the vocab projection
MATMULS = ("MatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum")


def pretraining_features(batch=3, length=16, predictions=4, seed=0) -> dict[str, tf.Tensor]:
    rng = np.random.default_rng(seed)
    positions = [np.sort(rng.choice(np.arange(1, length - 1), predictions, replace=False)) for _ in range(batch)]
    return {
        "token_ids": tf.constant(rng.integers(5, VOCAB, (batch, length)), tf.int32),
        "segment_ids": tf.constant(np.tile(np.arange(length) >= length // 2, (batch, 1)).astype(np.int32)),
        "padding_mask": tf.ones([batch, length], tf.bool),
        "masked_lm_positions": tf.constant(np.stack(positions), tf.int32),
        "masked_lm_ids": tf.constant(rng.integers(5, VOCAB, (batch, predictions)), tf.int32),
        "masked_lm_weights": tf.constant([[1.0] * (predictions - 1) + [0.0]] * batch, tf.float32),
        "next_sentence_label": tf.constant(rng.integers(0, 2, batch), tf.int32),
    }


# BERT with NSP, and Google-layout ALBERT (embedding 16 < hidden 32, two layers sharing a block) with SOP.
RECIPES = {
    "bert": (tiny_config(VOCAB), "nsp"),
    "albert": ({**tiny_config(VOCAB, layers=2), "embedding_size": 16, "hidden_act": "relu"}, "sop"),
}


def model_under(policy: str, model_type: str = "bert") -> MaskedLMModel:
    config, task = RECIPES[model_type]
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = MaskedLMModel(backbone_from_config(config), sentence_task=task)
        model(dummy_features())
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return model


def traced_ops(function, features) -> list[tf.Operation]:
    return tf.function(function).get_concrete_function(features).graph.get_operations()


def dtype_of(op: tf.Operation) -> str | None:
    return op.get_attr("T").name if "T" in op.node_def.attr else None


@pytest.mark.parametrize("model_type", list(RECIPES))
def test_mixed_bfloat16_keeps_the_heads_logits_and_losses_in_float32(model_type):
    keras.utils.set_random_seed(3)
    reference = model_under("float32", model_type)
    model = model_under("mixed_bfloat16", model_type)
    model.set_weights(reference.get_weights())
    assert {v.dtype for v in model.variables} == {"float32"}  # what the optimizer updates and the checkpoint holds
    assert model.backbone.compute_dtype == "bfloat16"
    assert model.masked_lm_head.compute_dtype == model.sentence_head.compute_dtype == "float32"

    features = pretraining_features()
    outputs, expected = model(features), reference(features)
    for name in ("masked_lm_logits", "sentence_logits"):
        assert outputs[name].dtype == tf.float32
        np.testing.assert_allclose(outputs[name], expected[name], atol=0.01)
    sums, expected_sums = model.loss_sums(features, outputs), model.loss_sums(features, expected)
    assert {value.dtype for value in sums.values()} == {tf.float32}
    for name in ("masked_lm_loss", f"{model.sentence_task}_loss"):
        assert float(sums[name]) == pytest.approx(float(expected_sums[name]), rel=0.02)

    ops = traced_ops(lambda f: model.loss_sums(f, model(f, training=True)), features)
    matmuls = [op for op in ops if op.type in MATMULS]
    vocab_projection = {dtype_of(op) for op in matmuls if op.outputs[0].shape[-1] == VOCAB}
    next_sentence = {dtype_of(op) for op in matmuls if op.outputs[0].shape[-1] == 2}
    assert vocab_projection == next_sentence == {"float32"}
    assert "bfloat16" in {dtype_of(op) for op in matmuls}  # the encoder's
    losses = [op for op in ops if op.type == "SparseSoftmaxCrossEntropyWithLogits"]
    assert len(losses) == 2 and {dtype_of(op) for op in losses} == {"float32"}  # masked LM and NSP
    # The LayerNorm statistics (encoder and masked-LM transform) stay float32 too.
    assert {dtype_of(op) for op in ops if op.type in ("Mean", "SquaredDifference", "Rsqrt")} == {"float32"}


def test_mixed_bfloat16_gradients_are_float32_for_every_variable():
    model = model_under("mixed_bfloat16")
    features = pretraining_features()
    with tf.GradientTape() as tape:
        sums = model.loss_sums(features, model(features, training=True))
        loss = sums["masked_lm_loss"] / sums["masked_lm_count"] + sums["nsp_loss"] / sums["examples"]
    gradients = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None for g in gradients)
    assert {tf.convert_to_tensor(g).dtype for g in gradients} == {tf.float32}
