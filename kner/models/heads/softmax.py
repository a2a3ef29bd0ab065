"""The softmax head: an independent distribution over the tags at each
character, trained by cross-entropy.

Decoding (`--decode`): "viterbi" (default), the best tag sequence the tag
scheme's grammar allows (`kner.data.tags`): Viterbi over the per-character
log-probabilities with zero transition scores, so only the scheme's
constraints link the positions; or "argmax", the most probable tag of each
character on its own (the sequence may break the grammar and is then read
leniently).

Example:
>>> head = SoftmaxHead(labels, decoding="viterbi")
>>> model = Tagger(backbone, labels, head=head)
"""

from __future__ import annotations

import keras
import tensorflow as tf

from kner.data.labels import LabelVocab
from kner.models.crf import constraint_scores, viterbi
from kner.models.heads.base import Head
from kner.models.heads.tags import TagHead


class SoftmaxHead(TagHead):
    name = "softmax"
    decodings = ("viterbi", "argmax")

    def __init__(self, labels: LabelVocab, decoding: str | None = None):
        super().__init__(labels, decoding)
        self._constraints = constraint_scores(labels.tags, labels.scheme)

    @classmethod
    def from_settings(cls, labels: LabelVocab, settings: dict) -> Head:
        # A model_dir written before `decode` was saved decoded by argmax.
        return cls(labels, decoding=settings.get("decode", "argmax"))

    def loss_sum(self, scores: tf.Tensor, batch: dict, lengths: tf.Tensor) -> tf.Tensor:
        """Cross-entropy summed over characters."""
        token_loss = keras.losses.sparse_categorical_crossentropy(batch["label_ids"], scores, from_logits=True)
        return tf.reduce_sum(token_loss * tf.cast(tf.sequence_mask(lengths, tf.shape(scores)[1]), tf.float32))

    def loss_count(self, batch: dict, lengths: tf.Tensor) -> tf.Tensor:
        """Characters."""
        return tf.cast(tf.reduce_sum(lengths), tf.float32)

    def best_tags(self, scores: tf.Tensor, mask: tf.Tensor, lengths: tf.Tensor) -> tf.Tensor:
        if self.decoding == "viterbi":
            log_probs = tf.nn.log_softmax(tf.cast(scores, tf.float32), axis=-1)
            return viterbi(log_probs, mask, lengths, *(tf.constant(c) for c in self._constraints))[0]
        return tf.where(mask, tf.argmax(scores, axis=-1, output_type=tf.int32), 0)
