"""`EncoderBackbone`: the BERT-style encoder of ALBERT and ELECTRA checkpoints,
built from keras-hub's layers, with each original's exact forward pass.

keras-hub's `AlbertBackbone` and `ElectraBackbone` cannot represent the
original checkpoints exactly: both hard-code the tanh approximation of GELU
(Google's Chinese ALBERT releases use ReLU, ELECTRA's `gelu` is the erf form),
`AlbertBackbone` always projects the embeddings (Google skips the projection
when `embedding_size == hidden_size`), and `ElectraBackbone` has a tanh pooler
that ELECTRA lacks. This backbone takes the activation and the layout as
arguments and otherwise uses keras-hub's `TransformerEncoder` and
`PositionEmbedding`, so it has their inputs, outputs and attribute names
(`token_embedding`, `position_embedding`, `transformer_layers`, ...).

Layouts (`layout`), from each project's `modeling.py`:

- `"albert"` (google-research/albert): token, position and segment
  embeddings of width `embedding_dim`, LayerNorm, then a dense projection to
  `hidden_dim` (with bias) when the widths differ; `num_groups` groups of
  `num_inner_repetitions` blocks; layer `i` runs group
  `int(i / num_layers * num_groups)` (unused groups get no layers); tanh pooler on the first token.
- `"albert_brightmart"` (brightmart/albert_zh): the token embedding is
  projected to `hidden_dim` *before* position and segment embeddings are
  added (no bias), the LayerNorm is `hidden_dim` wide, one block is shared by
  all layers; tanh pooler.
- `"electra"` (google-research/electra): embeddings and LayerNorm of width
  `embedding_dim`, projection (with bias) when the widths differ, one block
  per layer, no pooler: `pooled_output` is the first token's sequence output.
  ELECTRA's generator is such an encoder built with `shared_embeddings=`
  the discriminator: it calls the discriminator's token, position and
  segment embeddings and their LayerNorm (one set of variables, the
  `electra/embeddings` scope of google-research/electra `run_pretraining.py`)
  and has its own projection and blocks.

Activations: `"gelu_approximate"` (tanh form: BERT, ALBERT), `"gelu"` (erf
form: ELECTRA), `"relu"`, `"tanh"`, `"linear"`.

Example:

```python
backbone = EncoderBackbone(layout="albert", vocabulary_size=21128, num_layers=4,
                           num_heads=12, embedding_dim=128, hidden_dim=312,
                           intermediate_dim=1248, activation="relu")
backbone({"token_ids": ids, "segment_ids": segments, "padding_mask": mask})
# {"sequence_output": [batch, length, hidden_dim], "pooled_output": [batch, hidden_dim]}
```
"""

from __future__ import annotations

import keras
import keras_hub
from keras_hub.src.utils.keras_utils import gelu_approximate

LAYOUTS = ("albert", "albert_brightmart", "electra")
ACTIVATIONS = {
    "gelu_approximate": gelu_approximate,
    "gelu": "gelu",  # Keras's gelu: approximate=False, the erf form.
    "relu": "relu",
    "tanh": "tanh",
    "linear": "linear",
}


def used_groups(num_layers: int, num_groups: int) -> list[int]:
    """The groups some layer runs: layer `i` runs group `int(i / num_layers *
    num_groups)` (google-research/albert `transformer_model`), so with more
    groups than layers some are never used, and have no variables."""
    return sorted({int(i / num_layers * num_groups) for i in range(num_layers)})


@keras.saving.register_keras_serializable(package="kner")
class EncoderBackbone(keras_hub.models.Backbone):
    """ALBERT (Google or brightmart layout) or ELECTRA encoder.

    Args:
        layout: "albert", "albert_brightmart" or "electra" (module doc).
        vocabulary_size, num_layers, num_heads, hidden_dim, intermediate_dim,
        max_sequence_length, num_segments: as in keras-hub's backbones.
        embedding_dim: width of the token embedding table.
        num_groups: ALBERT's `num_hidden_groups` (default: 1 for ALBERT,
            `num_layers` for ELECTRA).
        num_inner_repetitions: ALBERT's `inner_group_num`.
        activation: key of `ACTIVATIONS`.
        dropout: hidden and attention dropout rate.
        initializer_range: stddev of the truncated-normal initialiser.
        shared_embeddings: an `"electra"` backbone whose embedding layers
            (token, position, segment, LayerNorm) this one calls instead of
            its own (ELECTRA's generator); `embedding_dim`,
            `vocabulary_size`, `max_sequence_length` and `num_segments`
            must equal its own.

    Inputs: `token_ids`, `segment_ids`, `padding_mask`, each [batch, length].
    Outputs: `sequence_output` [batch, length, hidden_dim] and
    `pooled_output` [batch, hidden_dim].
    """

    def __init__(
        self,
        layout: str,
        vocabulary_size: int,
        num_layers: int,
        num_heads: int,
        embedding_dim: int,
        hidden_dim: int,
        intermediate_dim: int,
        num_groups: int | None = None,
        num_inner_repetitions: int = 1,
        activation: str = "gelu_approximate",
        dropout: float = 0.0,
        max_sequence_length: int = 512,
        num_segments: int = 2,
        initializer_range: float = 0.02,
        shared_embeddings: EncoderBackbone | None = None,
        dtype=None,
        **kwargs,
    ):
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {activation!r}")
        if num_groups is None:
            num_groups = num_layers if layout == "electra" else 1
        if layout == "albert_brightmart" and (num_groups, num_inner_repetitions) != (1, 1):
            raise ValueError("brightmart's layout shares one block across all layers")
        if shared_embeddings is not None:
            sizes = (layout, vocabulary_size, embedding_dim, max_sequence_length, num_segments)
            _check_shareable(shared_embeddings, sizes)

        def initializer():
            return keras.initializers.TruncatedNormal(stddev=initializer_range)

        factorised_tokens = layout == "albert_brightmart"
        width = hidden_dim if factorised_tokens else embedding_dim

        # === Layers ===
        if shared_embeddings is not None:
            self.token_embedding = shared_embeddings.token_embedding
            self.position_embedding = shared_embeddings.position_embedding
            self.segment_embedding = shared_embeddings.segment_embedding
            self.embeddings_layer_norm = shared_embeddings.embeddings_layer_norm
        else:
            self.token_embedding = keras.layers.Embedding(
                vocabulary_size,
                embedding_dim,
                embeddings_initializer=initializer(),
                dtype=dtype,
                name="token_embedding",
            )
            self.position_embedding = keras_hub.layers.PositionEmbedding(
                sequence_length=max_sequence_length, initializer=initializer(), dtype=dtype, name="position_embedding"
            )
            self.segment_embedding = keras.layers.Embedding(
                num_segments, width, embeddings_initializer=initializer(), dtype=dtype, name="segment_embedding"
            )
            self.embeddings_layer_norm = keras.layers.LayerNormalization(
                epsilon=1e-12, dtype=dtype, name="embeddings_layer_norm"
            )
        self.token_projection = None
        if factorised_tokens:
            self.token_projection = keras.layers.Dense(
                hidden_dim, use_bias=False, kernel_initializer=initializer(), dtype=dtype, name="token_projection"
            )
        self.embeddings_dropout = keras.layers.Dropout(dropout, dtype=dtype, name="embeddings_dropout")
        self.embeddings_projection = None
        if width != hidden_dim:
            self.embeddings_projection = keras.layers.Dense(
                hidden_dim, kernel_initializer=initializer(), dtype=dtype, name="embeddings_projection"
            )
        self.transformer_layers = [
            [
                keras_hub.layers.TransformerEncoder(
                    num_heads=num_heads,
                    intermediate_dim=intermediate_dim,
                    activation=ACTIVATIONS[activation],
                    dropout=dropout,
                    layer_norm_epsilon=1e-12,
                    kernel_initializer=initializer(),
                    dtype=dtype,
                    name=f"group_{group}_inner_{inner}",
                )
                for inner in range(num_inner_repetitions)
            ]
            if group in used_groups(num_layers, num_groups)
            else []
            for group in range(num_groups)
        ]
        self.pooled_dense = None
        if layout != "electra":
            self.pooled_dense = keras.layers.Dense(
                hidden_dim, activation="tanh", kernel_initializer=initializer(), dtype=dtype, name="pooled_dense"
            )

        # === Functional model ===
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        segment_ids = keras.Input(shape=(None,), dtype="int32", name="segment_ids")
        padding_mask = keras.Input(shape=(None,), dtype="int32", name="padding_mask")
        tokens = self.token_embedding(token_ids)
        if self.token_projection is not None:
            tokens = self.token_projection(tokens)
        x = tokens + self.position_embedding(tokens) + self.segment_embedding(segment_ids)
        x = self.embeddings_dropout(self.embeddings_layer_norm(x))
        if self.embeddings_projection is not None:
            x = self.embeddings_projection(x)
        for index in range(num_layers):
            for block in self.transformer_layers[int(index / num_layers * num_groups)]:
                x = block(x, padding_mask=padding_mask)
        first = x[:, 0, :]
        pooled = first if self.pooled_dense is None else self.pooled_dense(first)
        super().__init__(
            inputs={"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask},
            outputs={"sequence_output": x, "pooled_output": pooled},
            dtype=dtype,
            **kwargs,
        )

        # === Config ===
        self.layout = layout
        self.vocabulary_size = vocabulary_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.embedding_dim = embedding_dim
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.num_groups = num_groups
        self.num_inner_repetitions = num_inner_repetitions
        self.activation = activation
        self.dropout = dropout
        self.max_sequence_length = max_sequence_length
        self.num_segments = num_segments
        self.initializer_range = initializer_range
        # A flag, not the backbone: an attribute would track it as a sublayer.
        self.shares_embeddings = shared_embeddings is not None

    def get_config(self) -> dict:
        if self.shares_embeddings:
            raise NotImplementedError("a backbone sharing another's embeddings is not serialised on its own")
        config = super().get_config()
        config.update(
            {
                key: getattr(self, key)
                for key in (
                    "layout",
                    "vocabulary_size",
                    "num_layers",
                    "num_heads",
                    "embedding_dim",
                    "hidden_dim",
                    "intermediate_dim",
                    "num_groups",
                    "num_inner_repetitions",
                    "activation",
                    "dropout",
                    "max_sequence_length",
                    "num_segments",
                    "initializer_range",
                )
            }
        )
        return config


def _check_shareable(shared: EncoderBackbone, mine: tuple) -> None:
    """ValueError unless a backbone of `mine` (layout, vocabulary_size,
    embedding_dim, max_sequence_length, num_segments) can call `shared`'s
    embedding layers."""
    theirs = (shared.layout, shared.vocabulary_size, shared.embedding_dim)
    theirs += (shared.max_sequence_length, shared.num_segments)
    if mine[0] != "electra" or mine != theirs:
        raise ValueError(
            "shared_embeddings needs two electra backbones of the same (layout, vocabulary_size, embedding_dim, "
            f"max_sequence_length, num_segments): {mine} vs {theirs}"
        )
