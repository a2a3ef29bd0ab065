"""BERT with Google's pretraining heads: masked LM and (optionally)
next-sentence prediction.

The masked-LM head is Google's `get_masked_lm_output`
(google-research/bert `run_pretraining.py`), built from keras-hub's
`MaskedLMHead`: gather the hidden states at the masked positions, a dense
transform with the config's activation (`gelu`, the tanh form, as
keras-hub's BERT and Google's `modeling.gelu`), LayerNorm with epsilon 1e-12
(Google's `modeling.layer_norm`; keras-hub's default 1e-5 is set here),
logits against the word embeddings (tied) plus an output bias. The
next-sentence head is `get_next_sentence_output`: logits of the pooled
`[CLS]` state against `output_weights` `[2, hidden]` plus a bias (label 0 =
B follows A, 1 = random B).

Losses follow Google: the masked-LM loss is the `masked_lm_weights`-weighted
mean of the per-prediction cross entropy, the next-sentence loss the mean
over examples; the total is their sum. Here they come as sums and counts so
that a `tf.distribute` replica can divide by the global counts.

Under a mixed-precision policy (`--mixed_precision=mixed_bfloat16`) the
backbone computes in bfloat16 and both heads in float32, as `Tagger`'s
classifier: the masked-LM transform, the vocab logits (against the float32
word embeddings, not keras-hub's bfloat16 reverse embedding call) and the
next-sentence logits, so the log-softmax and losses see float32 logits. The
variables are float32 under every policy.

Example:
>>> model = MaskedLMModel(backbone, next_sentence=True)
>>> outputs = model(features)  # masked_lm_logits [batch, predictions, vocab], next_sentence_logits [batch, 2]
"""

from __future__ import annotations

import keras
import keras_hub
import tensorflow as tf

from kner.backbones import bert_heads
from kner.backbones.weight_table import Weight

LAYER_NORM_EPSILON = 1e-12  # Google's modeling.layer_norm


def gelu(x):
    """Google's `modeling.gelu` (the tanh approximation)."""
    return keras.activations.gelu(x, approximate=True)


class NextSentenceHead(keras.layers.Layer):
    """`[batch, hidden]` pooled output -> `[batch, 2]` logits, with Google's
    variable layout (`output_weights` `[2, hidden]`, `output_bias` `[2]`)."""

    def __init__(self, initializer_range: float = 0.02, **kwargs):
        super().__init__(**kwargs)
        self.initializer_range = initializer_range

    def build(self, input_shape):
        initializer = keras.initializers.TruncatedNormal(stddev=self.initializer_range)
        self.output_weights = self.add_weight(
            name="output_weights", shape=(2, input_shape[-1]), initializer=initializer
        )
        self.output_bias = self.add_weight(name="output_bias", shape=(2,), initializer="zeros")

    def call(self, pooled):
        weights = keras.ops.cast(self.output_weights, pooled.dtype)
        return keras.ops.matmul(pooled, keras.ops.transpose(weights)) + keras.ops.cast(self.output_bias, pooled.dtype)


class MaskedLMHead(keras_hub.layers.MaskedLMHead):
    """keras-hub's `MaskedLMHead` with tied word embeddings, its vocab logits
    computed in this layer's compute dtype.

    keras-hub's head projects onto the vocab by calling the token embedding
    layer (`reverse=True`), which computes in that layer's dtype: bfloat16
    under a mixed policy, whatever the head's dtype. Here the head reads the
    embedding table itself, so `dtype="float32"` gives float32 logits
    `[batch, predictions, vocab_size]` from a bfloat16 encoder.
    """

    def call(self, inputs, mask_positions):
        x = keras.ops.take_along_axis(inputs, keras.ops.expand_dims(mask_positions, axis=-1), axis=1)
        x = self._intermediate_layer_norm(self._intermediate_dense(x))
        embeddings = keras.ops.cast(self.token_embedding.embeddings, self.compute_dtype)
        return keras.ops.matmul(x, keras.ops.transpose(embeddings)) + self._bias


class MaskedLMModel(keras.Model):
    """A keras-hub `BertBackbone` with the masked-LM head and, with
    `next_sentence`, the next-sentence head.

    Called on the features of `kner.data.masking.Masker` (`token_ids`,
    `segment_ids`, `padding_mask` `[batch, length]`; `masked_lm_positions`
    `[batch, predictions]`), it returns float32 `masked_lm_logits`
    `[batch, predictions, vocab_size]` and, with NSP, `next_sentence_logits`
    `[batch, 2]`.
    """

    def __init__(
        self,
        backbone: keras_hub.models.BertBackbone,
        next_sentence: bool = False,
        initializer_range: float = 0.02,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.backbone = backbone
        # Both heads compute in float32 under every policy (module docstring).
        self.masked_lm_head = MaskedLMHead(
            token_embedding=backbone.token_embedding,
            intermediate_activation=gelu,
            layer_norm_epsilon=LAYER_NORM_EPSILON,
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=initializer_range),
            dtype="float32",
            name="masked_lm_head",
        )
        self.next_sentence_head = (
            NextSentenceHead(initializer_range, dtype="float32", name="next_sentence_head") if next_sentence else None
        )

    def call(self, features: dict[str, tf.Tensor], training: bool = False) -> dict[str, tf.Tensor]:
        outputs = self.backbone(
            {
                "token_ids": features["token_ids"],
                "segment_ids": features["segment_ids"],
                "padding_mask": features["padding_mask"],
            },
            training=training,
        )
        result = {"masked_lm_logits": self.masked_lm_head(outputs["sequence_output"], features["masked_lm_positions"])}
        if self.next_sentence_head is not None:
            result["next_sentence_logits"] = self.next_sentence_head(outputs["pooled_output"])
        return result

    def head_weights(self) -> list[Weight]:
        """The heads' variables under Google's `cls/*` names."""
        head = self.masked_lm_head
        weights = bert_heads.masked_lm_weights(head._intermediate_dense, head._intermediate_layer_norm, head._bias)
        if self.next_sentence_head is not None:
            nsp = self.next_sentence_head
            weights += bert_heads.next_sentence_weights(nsp.output_weights, nsp.output_bias)
        return weights

    def heads(self) -> dict[str, list[Weight]]:
        """Head name (`bert_heads.MASKED_LM`, `NEXT_SENTENCE`) -> its weights."""
        weights = self.head_weights()
        return {
            head: [w for w in weights if w.name.startswith(scope + "/")]
            for head, scope in bert_heads.SCOPES.items()
            if any(w.name.startswith(scope + "/") for w in weights)
        }


def masked_lm_sums(features: dict[str, tf.Tensor], outputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """Sums over a batch (float32 scalars): `masked_lm_loss` (weighted cross
    entropy), `masked_lm_correct` (weighted argmax hits), `masked_lm_count`
    (sum of weights); with NSP also `next_sentence_loss`,
    `next_sentence_correct`; and `examples`."""
    logits = outputs["masked_lm_logits"]
    labels, weights = features["masked_lm_ids"], features["masked_lm_weights"]
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    hits = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32)
    sums = {
        "masked_lm_loss": tf.reduce_sum(losses * weights),
        "masked_lm_correct": tf.reduce_sum(hits * weights),
        "masked_lm_count": tf.reduce_sum(weights),
        "examples": tf.cast(tf.shape(labels)[0], tf.float32),
    }
    if "next_sentence_logits" in outputs:
        nsp_logits, nsp_labels = outputs["next_sentence_logits"], features["next_sentence_label"]
        nsp_losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=nsp_labels, logits=nsp_logits)
        sums["next_sentence_loss"] = tf.reduce_sum(nsp_losses)
        nsp_hits = tf.equal(tf.argmax(nsp_logits, -1, output_type=tf.int32), nsp_labels)
        sums["next_sentence_correct"] = tf.reduce_sum(tf.cast(nsp_hits, tf.float32))
    return sums


def dummy_features(batch: int = 1, length: int = 8, predictions: int = 2) -> dict[str, tf.Tensor]:
    """Features of the right structure, to build a model's weights."""
    ids = tf.zeros([batch, length], tf.int32)
    return {
        "token_ids": ids,
        "segment_ids": ids,
        "padding_mask": tf.ones([batch, length], tf.bool),
        "masked_lm_positions": tf.zeros([batch, predictions], tf.int32),
    }
