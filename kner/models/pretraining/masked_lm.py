"""Masked LM with an optional sentence-pair head: the pretraining recipe of
BERT (google-research/bert `run_pretraining.py`, with next-sentence
prediction) and of ALBERT (google-research/albert `run_pretraining.py`, with
sentence-order prediction), on a keras-hub `BertBackbone` or an ALBERT
`EncoderBackbone` (Google's layout).

The masked-LM head is `get_masked_lm_output`, built from keras-hub's
`MaskedLMHead`: gather the hidden states at the masked positions, a dense
transform to the width of the token embeddings (`hidden_size` for BERT,
`embedding_size` for ALBERT) with the encoder's activation (BERT: `gelu`, the
tanh form, as Google's `modeling.gelu`; ALBERT: its config's `hidden_act`,
ReLU in Google's Chinese releases), LayerNorm with epsilon 1e-12 (Google's
`modeling.layer_norm`; keras-hub's default 1e-5 is set here), logits against
the word embeddings (tied) plus an output bias. The sentence-pair head is
`get_next_sentence_output` / `get_sentence_order_output` (the same layer in
both): logits of the pooled `[CLS]` state against `output_weights`
`[2, hidden]` plus a bias; label 0 = B follows A, 1 = random B (NSP) or
swapped (SOP). Only this head reads the pooler: without it the pooler is not
trained (kept as initialised or loaded).

Losses follow Google: the masked-LM loss is the `masked_lm_weights`-weighted
mean of the per-prediction cross entropy, the sentence loss the mean over
examples; the total is their sum. Here they come as sums and counts so that
a `tf.distribute` replica can divide by the global counts.

Under a mixed-precision policy (`--mixed_precision=mixed_bfloat16`) the
backbone computes in bfloat16 and both heads in float32, as `Tagger`'s
classifier: the masked-LM transform, the vocab logits (against the float32
word embeddings, not keras-hub's bfloat16 reverse embedding call) and the
sentence logits, so the log-softmax and losses see float32 logits. The
variables are float32 under every policy.

The checkpoint is the encoder's family layout (`kner.backbones.loader`:
`bert_model.ckpt` + `bert_config.json` for BERT, `model.ckpt-best` +
`albert_config.json` for ALBERT, both with `vocab.txt`) plus the heads'
`cls/*` variables (`kner.backbones.bert_heads`).

Example:
>>> model = MaskedLMModel(backbone, sentence_task="sop")
>>> outputs = model(features)  # masked_lm_logits [batch, predictions, vocab], sentence_logits [batch, 2]
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import keras
import keras_hub
import tensorflow as tf

from kner.backbones import bert_heads
from kner.backbones.encoder import ACTIVATIONS, EncoderBackbone
from kner.backbones.loader import family_of, save_google_checkpoint
from kner.backbones.weight_table import Weight
from kner.data.pretraining_data import SENTENCE_TASKS
from kner.models.pretraining.objective import LossTerm, PretrainingModel

LAYER_NORM_EPSILON = 1e-12  # Google's modeling.layer_norm
VOCAB_FILE = "vocab.txt"


def gelu(x):
    """Google's `modeling.gelu` (the tanh approximation)."""
    return keras.activations.gelu(x, approximate=True)


def hidden_activation(backbone: keras_hub.models.Backbone):
    """The encoder's activation, which Google's masked-LM transform uses too."""
    if isinstance(backbone, EncoderBackbone):
        return ACTIVATIONS[backbone.activation]
    return gelu


class SentencePairHead(keras.layers.Layer):
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


class MaskedLMModel(PretrainingModel):
    """A BERT or Google-layout ALBERT backbone with the masked-LM head and,
    with `sentence_task` ("nsp" or "sop"), the sentence-pair head.

    Called on the features of `kner.data.masking.Masker` (`token_ids`,
    `segment_ids`, `padding_mask` `[batch, length]`; `masked_lm_positions`
    `[batch, predictions]`), it returns float32 `masked_lm_logits`
    `[batch, predictions, vocab_size]` and, with a sentence task,
    `sentence_logits` `[batch, 2]`.
    """

    best_metric = "masked_lm_accuracy"

    def __init__(
        self,
        backbone: keras_hub.models.Backbone,
        sentence_task: str | None = None,
        initializer_range: float = 0.02,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if sentence_task is not None and sentence_task not in SENTENCE_TASKS:
            raise ValueError(f"sentence_task must be one of {SENTENCE_TASKS} or None, got {sentence_task!r}")
        self.backbone, self.sentence_task = backbone, sentence_task
        # Both heads compute in float32 under every policy (module docstring).
        self.masked_lm_head = MaskedLMHead(
            token_embedding=backbone.token_embedding,
            intermediate_activation=hidden_activation(backbone),
            layer_norm_epsilon=LAYER_NORM_EPSILON,
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=initializer_range),
            dtype="float32",
            name="masked_lm_head",
        )
        self.sentence_head = None
        if sentence_task is not None:
            self.sentence_head = SentencePairHead(initializer_range, dtype="float32", name=f"{sentence_task}_head")
        backbone.pooled_dense.trainable = sentence_task is not None

    @property
    def loss_terms(self) -> tuple[LossTerm, ...]:
        """Masked LM per prediction, plus the sentence task per example."""
        terms = (LossTerm("masked_lm_loss", "masked_lm_count"),)
        if self.sentence_task is not None:
            terms += (LossTerm(f"{self.sentence_task}_loss", "examples"),)
        return terms

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
        if self.sentence_head is not None:
            result["sentence_logits"] = self.sentence_head(outputs["pooled_output"])
        return result

    def loss_sums(self, features: dict[str, tf.Tensor], outputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """`masked_lm_loss` (weighted cross entropy), `masked_lm_correct`
        (weighted argmax hits), `masked_lm_count` (sum of weights),
        `examples`; with a sentence task also `<task>_loss` and
        `<task>_correct` (`nsp_loss`, `sop_correct`, ...)."""
        sums = masked_lm_sums(features, outputs["masked_lm_logits"])
        if self.sentence_head is not None:
            logits, labels = outputs["sentence_logits"], features["next_sentence_label"]
            losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
            hits = tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels)
            sums[f"{self.sentence_task}_loss"] = tf.reduce_sum(losses)
            sums[f"{self.sentence_task}_correct"] = tf.reduce_sum(tf.cast(hits, tf.float32))
        return sums

    def loss_counts(self, features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return {
            "masked_lm_count": tf.reduce_sum(features["masked_lm_weights"]),
            "examples": tf.cast(tf.shape(features["token_ids"])[0], tf.float32),
        }

    def report(self, totals: Mapping[str, float]) -> dict[str, float | int]:
        """`masked_lm_accuracy`, `masked_lm_loss` (per prediction),
        `masked_lm_predictions`, `examples`, and with a sentence task
        `<task>_accuracy`, `<task>_loss` (per example)."""
        count, examples = max(totals.get("masked_lm_count", 0.0), 1.0), max(totals.get("examples", 0.0), 1.0)
        report = {
            "masked_lm_accuracy": totals.get("masked_lm_correct", 0.0) / count,
            "masked_lm_loss": totals.get("masked_lm_loss", 0.0) / count,
            "masked_lm_predictions": int(totals.get("masked_lm_count", 0.0)),
            "examples": int(totals.get("examples", 0.0)),
        }
        if self.sentence_task is not None:
            task = self.sentence_task
            report[f"{task}_accuracy"] = totals.get(f"{task}_correct", 0.0) / examples
            report[f"{task}_loss"] = totals.get(f"{task}_loss", 0.0) / examples
        return report

    def head_weights(self) -> list[Weight]:
        """The heads' variables under Google's `cls/*` names."""
        head = self.masked_lm_head
        weights = bert_heads.masked_lm_weights(head._intermediate_dense, head._intermediate_layer_norm, head._bias)
        if self.sentence_head is not None:
            weights += bert_heads.seq_relationship_weights(
                self.sentence_head.output_weights, self.sentence_head.output_bias
            )
        return weights

    def heads(self) -> dict[str, list[Weight]]:
        """Head name (`bert_heads.MASKED_LM`, `SEQ_RELATIONSHIP`) -> its weights."""
        weights = self.head_weights()
        return {
            head: [w for w in weights if w.name.startswith(scope + "/")]
            for head, scope in bert_heads.SCOPES.items()
            if any(w.name.startswith(scope + "/") for w in weights)
        }

    def describe(self) -> str:
        return f" + {self.sentence_task.upper()}" if self.sentence_task else ""

    def describe_head(self, head: str) -> str:
        return bert_heads.DESCRIPTIONS[head]

    def save_checkpoint(self, directory: str | Path, vocab_file: str | Path) -> tuple[Path, str]:
        prefix = save_google_checkpoint(self.backbone, directory, vocab_file, self.head_weights(), VOCAB_FILE)
        scopes = " and ".join(bert_heads.SCOPES[head] for head in self.heads())
        return prefix, f"{family_of(self.backbone)} layout, bert/* and {scopes}"


def masked_lm_sums(features: dict[str, tf.Tensor], logits: tf.Tensor) -> dict[str, tf.Tensor]:
    """Sums over a batch (float32 scalars) of the masked-LM `logits`
    `[batch, predictions, vocab]`: `masked_lm_loss` (weighted cross entropy),
    `masked_lm_correct` (weighted argmax hits), `masked_lm_count` (sum of
    weights) and `examples`."""
    labels, weights = features["masked_lm_ids"], features["masked_lm_weights"]
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    hits = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32)
    return {
        "masked_lm_loss": tf.reduce_sum(losses * weights),
        "masked_lm_correct": tf.reduce_sum(hits * weights),
        "masked_lm_count": tf.reduce_sum(weights),
        "examples": tf.cast(tf.shape(labels)[0], tf.float32),
    }


def dummy_features(batch: int = 1, length: int = 8, predictions: int = 2) -> dict[str, tf.Tensor]:
    """Features of the right structure (`kner.data.masking.Masker`'s), to
    build a model's weights."""
    ids = tf.zeros([batch, length], tf.int32)
    return {
        "token_ids": ids,
        "segment_ids": ids,
        "padding_mask": tf.ones([batch, length], tf.bool),
        "masked_lm_positions": tf.zeros([batch, predictions], tf.int32),
        "masked_lm_ids": tf.zeros([batch, predictions], tf.int32),
        "masked_lm_weights": tf.zeros([batch, predictions], tf.float32),
        "example_seed": tf.zeros([batch, 2], tf.int64),
    }
