"""What the pair heads (GlobalPointer, Efficient GlobalPointer) share: a
score for every (type, start, end) of a sentence, rotary position
embeddings, the sparse multilabel loss, and span decoding.

A pair head scores each span directly, so it finds nested spans, crossing
ones and one extent under two types (`Head.nested`). Its scores are
[B, types, M, M] float32 (start on the rows, end on the columns) with
`MASKED` where a span cannot be: past a row's `lengths`, and end < start.

Loss: bert4keras' `sparse_multilabel_categorical_crossentropy` (Su Jianlin,
kexue.fm/archives/7359) per sentence and type, over the M * M spans:

    log(1 + sum_{gold} exp(-s)) + log(1 + sum_{others} exp(s))

the second term computed from all spans and the gold ones only (`all +
log(1 - exp(gold - all))`), so the gold spans travel sparsely (`span_labels`,
`kner.data.targets.SpanTargets`) and only the scores are dense. Summed over
sentences x types; `loss_count` counts them.

Decoding: every span scoring above `decode_threshold` (`--decode_threshold`,
default 0, bert4keras' threshold), each with the score sigmoid(s) (0.5 at
threshold 0); `--decode=flat` keeps, greedily by score, the spans that
overlap no better one (for flat data sets).
"""

from __future__ import annotations

from typing import ClassVar

import keras
import tensorflow as tf

from kner.data.labels import LabelVocab
from kner.data.targets import SpanTargets
from kner.models.heads.base import Decoded, Head, Spans, Wrapper

# The score of impossible spans. Finite (not bert4keras' -inf) so that no
# sum or difference of it is NaN; exp() of it is 0 in float32.
MASKED = -1e12
# bert4keras clips 1 - exp(gold - all) at K.epsilon().
EPSILON = 1e-7


def rotary(x: tf.Tensor) -> tf.Tensor:
    """Rotary position embedding in the interleaved-pair form (bert4keras'
    `apply_rotary_position_embeddings` with `SinusoidalPositionEmbedding`):
    x [B, M, ..., D] at positions 0..M-1 along axis 1, pairs (x0, x1),
    (x2, x3), ... each rotated by position * 10000^(-2i/D):

        x * [cos t0, cos t0, cos t1, cos t1, ...] + [-x1, x0, -x3, x2, ...] * [sin t0, sin t0, ...]
    """
    depth = x.shape[-1]
    positions = tf.cast(tf.range(tf.shape(x)[1]), tf.float32)
    frequencies = tf.pow(10000.0, -2.0 * tf.range(depth // 2, dtype=tf.float32) / depth)
    angles = positions[:, None] * frequencies[None]  # [M, D / 2]
    shape = tf.concat([tf.shape(angles)[:1], tf.ones([x.shape.rank - 3], tf.int32), [depth]], 0)
    cos = tf.reshape(tf.repeat(tf.cos(angles), 2, axis=-1), shape)
    sin = tf.reshape(tf.repeat(tf.sin(angles), 2, axis=-1), shape)
    turned = tf.reshape(tf.stack([-x[..., 1::2], x[..., ::2]], axis=-1), tf.shape(x))
    return x * cos + turned * sin


def sparse_multilabel_loss(scores: tf.Tensor, span_labels: tf.Tensor) -> tf.Tensor:
    """Multilabel categorical cross-entropy per sentence and type [B, T]
    from dense scores [B, T, M, M] and sparse gold spans [B, N, 3] int32
    (type, start, end; rows of -1 pad), deduplicated."""
    batch, types, length = tf.shape(scores)[0], tf.shape(scores)[1], tf.shape(scores)[2]
    real = span_labels[..., 0] >= 0  # [B, N]
    where = tf.maximum(span_labels, 0)
    rows = tf.broadcast_to(tf.range(batch)[:, None], tf.shape(real))
    gold = tf.gather_nd(scores, tf.concat([rows[..., None], where], axis=-1))  # [B, N]
    of_type = (where[:, None, :, 0] == tf.range(types)[None, :, None]) & real[:, None, :]  # [B, T, N]
    gold = tf.broadcast_to(gold[:, None, :], tf.shape(of_type))
    # A column of MASKED keeps every reduction non-empty.
    pad = tf.fill(tf.concat([tf.shape(of_type)[:2], [1]], 0), MASKED)
    positive = tf.nn.softplus(tf.reduce_logsumexp(tf.concat([tf.where(of_type, -gold, MASKED), pad], -1), -1))
    gold_mass = tf.reduce_logsumexp(tf.concat([tf.where(of_type, gold, MASKED), pad], -1), -1)
    all_mass = tf.nn.softplus(tf.reduce_logsumexp(tf.reshape(scores, [batch, types, length * length]), -1))
    negative = all_mass + tf.math.log(tf.clip_by_value(-tf.math.expm1(gold_mass - all_mass), EPSILON, 1.0))
    return positive + negative


class PairHead(Head):
    """A head that scores every (type, start, end); subclasses compute the
    raw scores (`pair_scores`).

    Args:
        labels: the label vocabulary; the head scores its `types`.
        decoding: "nested" (every span over the threshold) or "flat".
        head_size: D, the width of each start and end vector (bert4keras: 64).
        decode_threshold: spans scoring above it are entities.
    """

    per_position: ClassVar[bool] = False
    nested: ClassVar[bool] = True
    decodings = ("nested", "flat")
    options = ("head_size", "decode_threshold")

    def __init__(
        self, labels: LabelVocab, decoding: str | None = None, head_size: int = 64, decode_threshold: float = 0.0
    ):
        super().__init__(labels, decoding)
        if head_size < 2 or head_size % 2:
            raise ValueError(f"--head_size must be an even number >= 2 (rotary embeddings turn pairs), got {head_size}")
        self.head_size = int(head_size)
        self.decode_threshold = float(decode_threshold)
        self.num_types = len(labels.types)

    @property
    def targets(self) -> SpanTargets:
        return SpanTargets(self.labels.types)

    @staticmethod
    def dense(units: int, name: str) -> keras.layers.Dense:
        """A float32 projection, initialised as bert4keras' (lecun_normal)."""
        return keras.layers.Dense(units, kernel_initializer="lecun_normal", dtype="float32", name=name)

    def pair_scores(self, units: tf.Tensor) -> tf.Tensor:
        """Raw scores [B, types, M, M] from units [B, M, hidden]."""
        raise NotImplementedError

    def scores(self, units: tf.Tensor, lengths: tf.Tensor, batch: dict | None, training: bool = False) -> tf.Tensor:
        scores = self.pair_scores(units)
        width = tf.shape(scores)[-1]
        inside = tf.sequence_mask(lengths, width)
        ordered = tf.linalg.band_part(tf.ones([width, width], tf.bool), 0, -1)  # end >= start
        possible = inside[:, :, None] & inside[:, None, :] & ordered[None]
        return tf.where(possible[:, None], scores, MASKED)

    def loss_sum(self, scores: tf.Tensor, batch: dict, lengths: tf.Tensor) -> tf.Tensor:
        """The loss summed over sentences (with a character) x types."""
        loss = sparse_multilabel_loss(scores, batch[SpanTargets.key])
        return tf.reduce_sum(tf.where((lengths > 0)[:, None], loss, 0.0))

    def loss_count(self, batch: dict, lengths: tf.Tensor) -> tf.Tensor:
        """Sentences with at least one character, times the types."""
        return tf.reduce_sum(tf.cast(lengths > 0, tf.float32)) * float(self.num_types)

    def window_spans(self, scores: tf.Tensor, lengths: tf.Tensor) -> Spans:
        """Every span above the threshold, ordered by row, start, end, type,
        with its raw score (`select` turns it into the entity score)."""
        del lengths  # the scores are masked
        by_start = tf.transpose(scores, [0, 2, 3, 1])  # [B, M, M, T]
        found = by_start > self.decode_threshold
        index = tf.cast(tf.where(found), tf.int32)
        return Spans(
            row=index[:, 0],
            start=index[:, 1],
            end=index[:, 2],
            type=index[:, 3],
            score=tf.gather_nd(by_start, index),
            per_row=tf.reduce_sum(tf.cast(found, tf.int32), axis=[1, 2, 3]),
        )

    def select(self, spans: Spans) -> Spans:
        """The decoding option on whole texts' spans of `window_spans`: all
        of them ("nested"), or greedily by raw score those overlapping no
        better one ("flat"), in the same order; with entity scores,
        sigmoid(score)."""
        if self.decoding == "nested":
            return spans._replace(score=tf.sigmoid(spans.score))
        # Spans as boxes [start, row, end + 1, row + 1]: two overlap (IoU > 0)
        # only when in the same row and sharing a character.
        row = tf.cast(spans.row, tf.float32)
        boxes = tf.stack([tf.cast(spans.start, tf.float32), row, tf.cast(spans.end + 1, tf.float32), row + 1.0], 1)
        kept = tf.sort(tf.image.non_max_suppression(boxes, spans.score, tf.size(spans.score), iou_threshold=0.0))
        row = tf.gather(spans.row, kept)
        per_row = tf.math.unsorted_segment_sum(tf.ones_like(row), row, tf.size(spans.per_row))
        start, end, entity_type, score = (tf.gather(t, kept) for t in (spans.start, spans.end, spans.type, spans.score))
        return Spans(row, start, end, entity_type, tf.sigmoid(score), per_row)

    def decode(self, scores: tf.Tensor, lengths: tf.Tensor, compiled: Wrapper | None = None) -> Decoded:
        """The spans above the threshold (nothing for `compiled` to wrap)."""
        return Decoded(self.select(self.window_spans(scores, lengths)))
