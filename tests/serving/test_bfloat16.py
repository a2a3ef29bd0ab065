import keras
import numpy as np
import pytest
import tensorflow as tf

from kner.backbones.encoder import EncoderBackbone
from kner.checkpoint import backbone_from_config
from kner.data.labels import LabelVocab
from kner.models.artifacts import dummy_batch
from kner.models.tagger import Tagger
from kner.serving.bfloat16 import bfloat16_matmuls
from tests.tagger_dirs import tiny_config

DIMENSIONS = {"num_layers": 2, "num_heads": 2, "hidden_dim": 32, "intermediate_dim": 64, "embedding_dim": 16}
# Element-wise work that must stay float32 (LayerNorm, GELU/ReLU, softmax).
FLOAT32_ONLY = {"Softmax", "Tanh", "Erf", "Erfc", "Relu", "Rsqrt", "SquaredDifference", "Mean", "Pow"}
INPUTS = {
    "token_ids": tf.constant([[2, 5, 7, 9, 3, 0], [2, 11, 3, 0, 0, 0]]),
    "segment_ids": tf.zeros([2, 6], tf.int32),
    "padding_mask": tf.constant([[1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0]]) > 0,
}


def tagger(family: str, dtype: str) -> Tagger:
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(dtype)
    try:
        if family == "bert":
            backbone = backbone_from_config(tiny_config(50, layers=2))
        else:
            activation = {"albert": "relu", "electra": "gelu"}.get(family, "gelu_approximate")
            backbone = EncoderBackbone(family, vocabulary_size=50, activation=activation, **DIMENSIONS)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    model = Tagger(backbone, LabelVocab.from_types(["loc", "name"], "bios"), head="crf")
    model(dummy_batch())
    return model


def ops_by_dtype(model: Tagger) -> dict[str, set[str]]:
    graph = tf.function(model).get_concrete_function(INPUTS).graph
    found = {"bfloat16": set(), "float32": set()}
    for op in graph.get_operations():
        if "T" in op.node_def.attr and op.get_attr("T") in (tf.bfloat16, tf.float32):
            found[op.get_attr("T").name].add(op.type)
    return found


@pytest.mark.parametrize("family", ["bert", "albert", "albert_brightmart", "electra"])
def test_only_the_matmuls_compute_in_bfloat16_and_scores_stay_closer_to_float32(family):
    keras.utils.set_random_seed(3)
    reference = tagger(family, "float32")
    bfloat16, matmuls = tagger(family, "bfloat16"), tagger(family, "bfloat16")
    for model in (bfloat16, matmuls):
        model.set_weights(reference.get_weights())
    bfloat16_matmuls(matmuls)

    assert ops_by_dtype(bfloat16)["bfloat16"] & FLOAT32_ONLY  # the whole-bfloat16 policy computes them in bf16
    in_bfloat16 = ops_by_dtype(matmuls)["bfloat16"]
    assert "MatMul" in in_bfloat16 and not in_bfloat16 & FLOAT32_ONLY, in_bfloat16
    # The weights stay bfloat16 (no per-call casts of float32 weights).
    assert {v.dtype for v in matmuls.backbone.weights} == {"bfloat16"}

    expected = reference(INPUTS).numpy()
    models = {"bf16": bfloat16, "mm": matmuls}
    error = {name: np.abs(model(INPUTS).numpy() - expected).mean() for name, model in models.items()}
    assert error["mm"] < error["bf16"], error
    assert error["mm"] < 0.02 * np.abs(expected).mean() + 1e-3, error
    tags = [model.decode(INPUTS, model(INPUTS)).tag_ids for model in (matmuls, reference)]
    np.testing.assert_array_equal(*tags)


def test_a_float32_model_is_refused():
    with pytest.raises(ValueError, match="not bfloat16"):
        bfloat16_matmuls(tagger("bert", "float32"))
