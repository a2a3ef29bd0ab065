"""Efficient GlobalPointer (`--head=efficient_global_pointer`): GlobalPointer
with one start/end score shared by every type plus per-type biases, as
bert4keras' `EfficientGlobalPointer` (Su Jianlin, kexue.fm/archives/8877;
bert4keras/layers.py).

A dense layer maps h to 2·D values, q = the even columns and k = the odd
ones, both turned by rotary position embeddings (`pairs.rotary`); a second
dense layer maps those 2·D values to 2·T type biases b, halved, of which
the even channels add along the end (column) axis and the odd ones along
the start (row) axis:

    score[t, start, end] = q(start) · k(end) / sqrt(D) + b_2t(end) / 2 + b_2t+1(start) / 2

It has (hidden + 1)·2D + (2D + 1)·2T weights against GlobalPointer's
(hidden + 1)·2DT, and scored higher on CLUENER and CMeEE in the source.
Training, loss and decoding: `kner.models.heads.pairs`.

Example:
>>> model = Tagger(backbone, labels, head="efficient_global_pointer")
"""

from __future__ import annotations

import tensorflow as tf

from kner.data.labels import LabelVocab
from kner.models.heads.pairs import PairHead, rotary


class EfficientGlobalPointerHead(PairHead):
    name = "efficient_global_pointer"

    def __init__(self, labels: LabelVocab, decoding: str | None = None, **options):
        super().__init__(labels, decoding, **options)
        self.pointer = self.dense(2 * self.head_size, "pointer")
        self.type_bias = self.dense(2 * self.num_types, "type_bias")
        self.layers.update(pointer=self.pointer, type_bias=self.type_bias)

    def pair_scores(self, units: tf.Tensor) -> tf.Tensor:
        projected = self.pointer(units)  # [B, M, 2D]
        q, k = rotary(projected[..., ::2]), rotary(projected[..., 1::2])
        shared = tf.einsum("bmd,bnd->bmn", q, k) / self.head_size**0.5
        bias = tf.transpose(self.type_bias(projected), [0, 2, 1]) / 2  # [B, 2T, M]
        return shared[:, None] + bias[:, ::2, None, :] + bias[:, 1::2, :, None]
