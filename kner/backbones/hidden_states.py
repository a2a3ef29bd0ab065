"""Every layer's hidden states of a keras-hub `BertBackbone`, for matching
a student's layers to a teacher's in distillation.

Hidden state 0 is the embeddings' output (after their LayerNorm and
dropout) and state i the output of transformer layer i, so a backbone of N
layers has N + 1 states and the last is its `sequence_output`: the
numbering of Hugging Face's `output_hidden_states`, which TextBrewer's
layer maps (`layer_T`, `layer_S`) use.

Example:
>>> states = hidden_state_model(backbone)(features)  # N + 1 tensors [batch, length, hidden]
"""

from __future__ import annotations

import keras
import keras_hub


def hidden_state_model(backbone: keras_hub.models.BertBackbone) -> keras.Model:
    """A functional model sharing `backbone`'s layers and weights that maps
    its inputs (`token_ids`, `segment_ids`, `padding_mask`) to the list of
    its `num_layers + 1` hidden states, each [batch, length, hidden_dim]."""
    outputs = [backbone.get_layer("embeddings_dropout").output]
    outputs += [layer.output for layer in backbone.transformer_layers]
    return keras.Model(backbone.input, outputs, name=f"{backbone.name}_hidden_states")
