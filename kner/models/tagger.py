"""The tagger: BERT-family backbone -> dropout -> a head (`kner.models.heads`).

The model reads the batches of `kner.data.pipeline` (`token_ids`,
`segment_ids`, `padding_mask`, `label_mask`) and returns its head's scores
at the labelled units (`kner.data.units`): the head sees the backbone's
output at the positions of the batch's `label_mask`, in order
(`unit_states`; every position after `[CLS]` for one token per character),
so its position i is unit i, and each row's count of labelled positions
(`lengths`; the batch's `label_mask`, or the tokens of its `padding_mask`).

The loss comes as a sum and a count so that the training loop can normalise
by the count of the *global* batch: that makes the loss and its gradients
the same whatever the number of replicas.

Example:
>>> model = Tagger(backbone, labels, head="crf")   # or a `Head`, or "global_pointer"
>>> scores = model(batch)                  # [batch, length - 1, num_tags] for a tagging head
>>> loss = model.loss_sum(batch, scores) / model.loss_count(batch)
>>> decoded = model.decode(batch, scores)  # `kner.models.heads.Decoded`: spans (and tags)

Under a mixed-precision policy (`keras.mixed_precision.set_global_policy(
"mixed_bfloat16")`, or a backbone built with `dtype="mixed_bfloat16"`) the
backbone computes in bfloat16, with keras-hub's LayerNorm statistics in
float32; the heads and the losses always run in float32, and the weights the
optimizer updates are float32 (the mixed policies keep float32 variables).
"""

from __future__ import annotations

import keras
import keras_hub
import tensorflow as tf

from kner.data.labels import LabelVocab
from kner.data.pipeline import label_mask
from kner.models.heads import Decoded, Head, Wrapper, build_head

FEATURES = ("token_ids", "segment_ids", "padding_mask")


class Tagger(keras.Model):
    """Sequence tagger over a keras-hub backbone (`BertBackbone`, kner's
    `EncoderBackbone` for ALBERT and ELECTRA, or a preset's).

    Args:
        backbone: the encoder (`kner.checkpoint.load_backbone` or
            `backbone_from_config`); it takes `token_ids`, `segment_ids` and
            `padding_mask` and returns `sequence_output`.
        labels: the label vocabulary.
        head: a `kner.models.heads.Head`, or the name of one (`HEADS`),
            built with `decoding` and `options` (such as `head_size`).
        dropout: dropout rate before the head.
        decoding: see the head (`--decode`); default its first.

    The head's layers are the model's, under their names (`classifier`,
    `crf`, ...): weight files and checkpoints keep one flat layout.
    """

    def __init__(
        self,
        backbone: keras_hub.models.Backbone,
        labels: LabelVocab,
        head: str | Head = "crf",
        dropout: float = 0.1,
        decoding: str | None = None,
        **options,
    ):
        head = head if isinstance(head, Head) else build_head(head, labels, decoding, **options)
        super().__init__(name=options.pop("name", None))
        self.backbone = backbone
        # Only the sequence output is used: the pooler would get no gradient
        # (and Keras would warn at every trace), so it stays frozen. (ELECTRA
        # has none.)
        if getattr(backbone, "pooled_dense", None) is not None:
            backbone.pooled_dense.trainable = False
        self.labels = labels
        self.dropout = keras.layers.Dropout(dropout, dtype=backbone.dtype_policy)
        object.__setattr__(self, "head", head)  # not a layer: its layers are tracked below
        for name, layer in head.layers.items():
            setattr(self, name, layer)

    @property
    def targets(self):
        """The data-side encoder of the head's targets (`kner.data.targets`)."""
        return self.head.targets

    def head_layers(self) -> list[keras.layers.Layer]:
        """Layers trained with the head learning rate."""
        return list(self.head.layers.values())

    def call(self, batch: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        features = {k: batch[k] for k in FEATURES}
        sequence = self.backbone(features, training=training)["sequence_output"]
        return self.head_scores(sequence, batch, training=training)

    def head_scores(self, sequence: tf.Tensor, batch: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        """The head's float32 scores from the backbone's sequence output
        [batch, length, hidden] of `batch` (whose targets the head may read
        when training)."""
        units = self.dropout(self.unit_states(sequence, batch), training=training)
        return self.head.scores(units, self.lengths(batch), batch, training=training)

    @staticmethod
    def unit_states(sequence: tf.Tensor, batch: dict[str, tf.Tensor]) -> tf.Tensor:
        """The labelled units' states [batch, length - 1, hidden]: the
        positions of the batch's `label_mask` first, in order, then the rest
        (which no head reads). With one unit per token after `[CLS]` (every
        character, or every sub-token) this is `sequence[:, 1:]` itself; with
        the first sub-token of each word it is the words' states. Without a
        `label_mask` (every token a unit) it is `sequence[:, 1:]`."""
        if "label_mask" not in batch:
            return sequence[:, 1:]
        mask = label_mask(batch)[:, 1:]
        order = tf.argsort(tf.cast(~mask, tf.int32), axis=1, stable=True)
        return tf.gather(sequence[:, 1:], order, batch_dims=1)

    @staticmethod
    def lengths(batch: dict[str, tf.Tensor]) -> tf.Tensor:
        """Labelled units [batch] int32 of each row (`unit_states` puts them
        first)."""
        return tf.reduce_sum(tf.cast(label_mask(batch)[:, 1:], tf.int32), axis=1)

    def loss_count(self, batch: dict[str, tf.Tensor]) -> tf.Tensor:
        """What the loss is averaged over (see the head: sentences for the
        CRF, characters for softmax, sentences x types for GlobalPointer)."""
        return self.head.loss_count(batch, self.lengths(batch))

    def loss_sum(self, batch: dict[str, tf.Tensor], scores: tf.Tensor) -> tf.Tensor:
        """The head's loss summed over the batch."""
        return self.head.loss_sum(scores, batch, self.lengths(batch))

    def decode(self, batch: dict[str, tf.Tensor], scores: tf.Tensor, compiled: Wrapper | None = None) -> Decoded:
        """Entity spans (character offsets) and, for a tagging head, the tags
        [batch, length - 1] of each character (`compiled`: see `Head.decode`)."""
        return self.head.decode(scores, self.lengths(batch), compiled)
