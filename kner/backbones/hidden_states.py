"""Every layer's hidden states of a keras-hub `BertBackbone` or kner's
`EncoderBackbone` (ALBERT, ELECTRA), for matching a student's layers to a
teacher's in distillation.

Hidden state 0 is the embeddings' output (after their LayerNorm and
dropout, and the projection to the hidden width where there is one) and
state i the output of transformer layer i, so a backbone of N layers has
N + 1 states and the last is its `sequence_output`: the numbering of
Hugging Face's `output_hidden_states`, which TextBrewer's layer maps
(`layer_T`, `layer_S`) use. ALBERT's shared blocks give one state per
layer, taken from the call of the block that layer makes.

Example:
>>> states = hidden_state_model(backbone)(features)  # N + 1 tensors [batch, length, hidden]
"""

from __future__ import annotations

import keras


def _layer_outputs(backbone: keras.Model) -> list:
    """The symbolic output of each of the backbone's layers, in order."""
    blocks = backbone.transformer_layers
    if not blocks or not isinstance(blocks[0], list):  # BertBackbone: one block per layer, each called once
        return [block.output for block in blocks]
    groups, layers = len(blocks), backbone.num_layers
    calls: dict[int, int] = {}
    outputs = []
    for index in range(layers):
        for block in blocks[int(index / layers * groups)]:
            node = block._inbound_nodes[calls.get(id(block), 0)]
            calls[id(block)] = calls.get(id(block), 0) + 1
        outputs.append(node.output_tensors[0])
    return outputs


def hidden_state_model(backbone: keras.Model) -> keras.Model:
    """A functional model sharing `backbone`'s layers and weights that maps
    its inputs (`token_ids`, `segment_ids`, `padding_mask`) to the list of
    its `num_layers + 1` hidden states, each [batch, length, hidden_dim]."""
    embeddings = getattr(backbone, "embeddings_projection", None) or backbone.get_layer("embeddings_dropout")
    outputs = [embeddings.output, *_layer_outputs(backbone)]
    return keras.Model(backbone.input, outputs, name=f"{backbone.name}_hidden_states")
