"""The tagger: BERT-family backbone -> dropout -> dense over tags -> softmax or CRF.

The model reads the batches of `kner.data.pipeline` (`token_ids`, `segment_ids`,
`padding_mask`) and returns per-token tag scores. The character positions,
the ones that carry labels, are `char_mask(padding_mask)`: everything but
`[CLS]`, `[SEP]` and padding.

The loss comes as a sum and a count so that the training loop can normalise
by the count of the *global* batch: that makes the loss and its gradients
the same whatever the number of replicas.

Example:
>>> model = Tagger(backbone, labels, head="crf")
>>> scores = model(batch)                  # [batch, length, num_tags]
>>> loss = model.loss_sum(batch, scores) / model.loss_count(batch)
>>> tags = model.decode(batch, scores)     # [batch, length] tag ids

Under a mixed-precision policy (`keras.mixed_precision.set_global_policy(
"mixed_bfloat16")`, or a backbone built with `dtype="mixed_bfloat16"`) the
backbone computes in bfloat16, with keras-hub's LayerNorm statistics in
float32; the classifier, the CRF, the softmax and the losses always run in
float32, and the weights the optimizer updates are float32 (the mixed
policies keep float32 variables).
"""

from __future__ import annotations

import keras
import keras_hub
import tensorflow as tf

from kner.data.labels import LabelVocab
from kner.data.pipeline import char_mask
from kner.models.crf import CRF, allowed_transitions, constraint_scores, viterbi

HEADS = ("softmax", "crf")
DECODINGS = ("viterbi", "argmax")


class Tagger(keras.Model):
    """Sequence tagger over a keras-hub backbone (`BertBackbone`, kner's
    `EncoderBackbone` for ALBERT and ELECTRA, or a preset's).

    Args:
        backbone: the encoder (`kner.checkpoint.load_backbone` or
            `backbone_from_config`); it takes `token_ids`, `segment_ids` and
            `padding_mask` and returns `sequence_output`.
        labels: the label vocabulary; with the CRF head its tag scheme
            constrains Viterbi decoding to valid tag sequences.
        head: "crf" or "softmax".
        dropout: dropout rate before the tag projection.
        decoding: how tags are chosen from the scores. "viterbi": the best
            tag sequence the scheme's grammar allows (`kner.data.tags`); for
            the softmax head that is Viterbi over the per-character
            log-probabilities with zero transition scores, so only the
            constraints link the positions. "argmax": the most probable tag
            of each character on its own (softmax head only; the sequence may
            break the grammar and is then read leniently).
    """

    def __init__(
        self,
        backbone: keras_hub.models.Backbone,
        labels: LabelVocab,
        head: str = "crf",
        dropout: float = 0.1,
        decoding: str = "viterbi",
        **kwargs,
    ):
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        if decoding not in DECODINGS or (head == "crf" and decoding != "viterbi"):
            raise ValueError(f"decoding must be one of {DECODINGS} (viterbi for the crf head), got {decoding!r}")
        super().__init__(**kwargs)
        self.backbone = backbone
        # Only the sequence output is used: the pooler would get no gradient
        # (and Keras would warn at every trace), so it stays frozen. (ELECTRA
        # has none.)
        if getattr(backbone, "pooled_dense", None) is not None:
            backbone.pooled_dense.trainable = False
        self.labels = labels
        self.head = head
        self.decoding = decoding
        self.dropout = keras.layers.Dropout(dropout, dtype=backbone.dtype_policy)
        self.classifier = keras.layers.Dense(
            len(labels),
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            # The tag scores feed the softmax or the CRF: float32 whatever the
            # backbone computes in (it costs one [hidden, tags] matmul).
            dtype="float32",
            name="classifier",
        )
        self.crf = None
        if head == "crf":
            allowed, start, end = allowed_transitions(labels.tags, labels.scheme)
            self.crf = CRF(len(labels), allowed_transitions=allowed, allowed_start=start, allowed_end=end, name="crf")
        self._constraints = constraint_scores(labels.tags, labels.scheme)

    def head_layers(self) -> list[keras.layers.Layer]:
        """Layers trained with the head learning rate."""
        return [layer for layer in (self.classifier, self.crf) if layer is not None]

    def call(self, batch: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        features = {k: batch[k] for k in ("token_ids", "segment_ids", "padding_mask")}
        sequence = self.backbone(features, training=training)["sequence_output"]
        return self.tag_scores(sequence, training=training)

    def tag_scores(self, sequence: tf.Tensor, training: bool = False) -> tf.Tensor:
        """Tag scores [batch, length, num_tags] (the emission scores of the
        CRF head), in the compute dtype, from the backbone's sequence output
        [batch, length, hidden]."""
        return self.classifier(self.dropout(sequence, training=training))

    def loss_count(self, batch: dict[str, tf.Tensor]) -> tf.Tensor:
        """What the loss is averaged over: sentences with at least one
        character (CRF), or characters (softmax)."""
        mask = char_mask(batch["padding_mask"])
        if self.crf is not None:
            mask = tf.reduce_any(mask, axis=1)
        return tf.reduce_sum(tf.cast(mask, tf.float32))

    def loss_sum(self, batch: dict[str, tf.Tensor], scores: tf.Tensor) -> tf.Tensor:
        """Per-sentence CRF negative log-likelihood, or per-character
        cross-entropy, summed over the batch."""
        mask = char_mask(batch["padding_mask"])
        labels = batch["label_ids"]
        if self.crf is not None:
            return -tf.reduce_sum(self.crf.log_likelihood(scores[:, 1:], labels[:, 1:], mask[:, 1:]))
        token_loss = keras.losses.sparse_categorical_crossentropy(labels, scores, from_logits=True)
        return tf.reduce_sum(token_loss * tf.cast(mask, tf.float32))

    def decode(self, batch: dict[str, tf.Tensor], scores: tf.Tensor) -> tf.Tensor:
        """Best tag ids [batch, length] at token positions; 0 (`O`) elsewhere
        (see `decoding`), from the scores of `[CLS] chars [SEP]` rows."""
        chars = char_mask(batch["padding_mask"])[:, 1:]
        lengths = tf.reduce_sum(tf.cast(chars, tf.int32), axis=1)
        return tf.pad(self.decode_chars(scores[:, 1:], chars, lengths), [[0, 0], [1, 0]])

    def decode_chars(self, scores: tf.Tensor, mask: tf.Tensor, lengths: tf.Tensor) -> tf.Tensor:
        """Best tag ids [batch, chars] int32 from character scores [batch,
        chars, tags] (no `[CLS]` row), a bool prefix `mask` [batch, chars]
        and its row sums `lengths` [batch] int32; 0 (`O`) where `mask` is
        False. The serving graph calls this directly (`kner.serving`)."""
        if self.crf is not None:
            return self.crf.decode(scores, mask)[0]
        if self.decoding == "viterbi":
            log_probs = tf.nn.log_softmax(tf.cast(scores, tf.float32), axis=-1)
            return viterbi(log_probs, mask, lengths, *(tf.constant(c) for c in self._constraints))[0]
        return tf.where(mask, tf.argmax(scores, axis=-1, output_type=tf.int32), 0)
