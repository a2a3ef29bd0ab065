"""The CRF head: per-character emission scores plus learned transition
scores (`kner.models.crf.CRF`), trained on each sentence's negative
log-likelihood and decoded by Viterbi within the tag scheme's grammar.

Example:
>>> model = Tagger(backbone, labels, head="crf")
>>> model.crf.transitions  # [tags, tags], [from, to]
"""

from __future__ import annotations

import tensorflow as tf

from kner.data.labels import LabelVocab
from kner.models.crf import CRF, allowed_transitions
from kner.models.heads.tags import TagHead


class CRFHead(TagHead):
    name = "crf"
    decodings = ("viterbi",)

    def __init__(self, labels: LabelVocab, decoding: str | None = None):
        super().__init__(labels, decoding)
        allowed, start, end = allowed_transitions(labels.tags, labels.scheme)
        self.crf = CRF(len(labels), allowed_transitions=allowed, allowed_start=start, allowed_end=end, name="crf")
        self.layers["crf"] = self.crf

    def loss_sum(self, scores: tf.Tensor, batch: dict, lengths: tf.Tensor) -> tf.Tensor:
        """Negative log-likelihood summed over sentences."""
        mask = tf.sequence_mask(lengths, tf.shape(scores)[1])
        return -tf.reduce_sum(self.crf.log_likelihood(scores, batch["label_ids"], mask))

    def loss_count(self, batch: dict, lengths: tf.Tensor) -> tf.Tensor:
        """Sentences with at least one character."""
        return tf.reduce_sum(tf.cast(lengths > 0, tf.float32))

    def best_tags(self, scores: tf.Tensor, mask: tf.Tensor, lengths: tf.Tensor) -> tf.Tensor:
        return self.crf.decode(scores, mask)[0]
