"""GlobalPointer (`--head=global_pointer`): every (start, end) of each type
scored as a whole, as bert4keras' `GlobalPointer` (Su Jianlin,
kexue.fm/archives/8373; bert4keras/layers.py).

One dense layer maps each unit's hidden state h to 2·D·T values (T types,
D = `--head_size`); for type t, q = the first D and k = the last D of its
2·D, both turned by rotary position embeddings (`pairs.rotary`), and

    score[t, start, end] = q_t(start) · k_t(end) / sqrt(D)

Training, loss and decoding: `kner.models.heads.pairs`.

Example:
>>> model = Tagger(backbone, labels, head="global_pointer", head_size=64)
>>> model(batch).shape  # [batch, types, length - 1, length - 1]
"""

from __future__ import annotations

import tensorflow as tf

from kner.data.labels import LabelVocab
from kner.models.heads.pairs import PairHead, rotary


class GlobalPointerHead(PairHead):
    name = "global_pointer"

    def __init__(self, labels: LabelVocab, decoding: str | None = None, **options):
        super().__init__(labels, decoding, **options)
        self.global_pointer = self.dense(2 * self.head_size * self.num_types, "global_pointer")
        self.layers["global_pointer"] = self.global_pointer

    def pair_scores(self, units: tf.Tensor) -> tf.Tensor:
        projected = self.global_pointer(units)  # [B, M, T * 2D]
        shape = tf.concat([tf.shape(projected)[:2], [self.num_types, 2 * self.head_size]], 0)
        per_type = tf.reshape(projected, shape)  # [B, M, T, 2D]
        q, k = rotary(per_type[..., : self.head_size]), rotary(per_type[..., self.head_size :])
        return tf.einsum("bmtd,bntd->btmn", q, k) / self.head_size**0.5
