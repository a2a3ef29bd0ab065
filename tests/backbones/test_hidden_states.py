"""Every layer's hidden states: N + 1 of them, the last the sequence output,
for BERT and for ALBERT's shared blocks."""

import numpy as np
import pytest
import tensorflow as tf
from tagger_dirs import tiny_config

from kner.backbones.encoder import EncoderBackbone
from kner.backbones.hidden_states import hidden_state_model
from kner.checkpoint import backbone_from_config

IDS = tf.constant([[1, 5, 6, 7, 2, 0]])
FEATURES = {"token_ids": IDS, "segment_ids": tf.zeros_like(IDS), "padding_mask": tf.constant([[1, 1, 1, 1, 1, 0]])}


def albert(layers: int) -> EncoderBackbone:
    return EncoderBackbone(
        layout="albert", vocabulary_size=20, num_layers=layers, num_heads=2, embedding_dim=16, hidden_dim=32,
        intermediate_dim=64, max_sequence_length=32,
    )  # fmt: skip


@pytest.mark.parametrize(
    "build", [lambda: backbone_from_config(tiny_config(20, layers=3)), lambda: albert(3)], ids=["bert", "albert"]
)
def test_one_state_per_layer_plus_the_embeddings_and_the_last_is_the_sequence_output(build):
    backbone = build()
    states = hidden_state_model(backbone)(FEATURES)
    assert len(states) == 4 and all(tuple(s.shape) == (1, 6, 32) for s in states)
    np.testing.assert_allclose(states[-1], backbone(FEATURES)["sequence_output"], atol=1e-6)
    # The layers differ: each state is a different layer's output.
    assert not np.allclose(states[1], states[2])


def test_albert_shared_block_states_are_the_block_applied_again():
    backbone = albert(2)
    first, second = hidden_state_model(backbone)(FEATURES)[1:]
    block = backbone.transformer_layers[0][0]
    np.testing.assert_allclose(second, block(first, padding_mask=FEATURES["padding_mask"]), atol=1e-5)
