"""The span head (`--head=span`): a start pointer and an end pointer per
character, as lonePatient's `BertSpanForNer` (github.com/lonePatient/
BERT-NER-Pytorch, `models/bert_for_ner.py` with `soft_label=True`, its
`models/layers/linears.py` `PoolerStartLogits`/`PoolerEndLogits` and
`processors/utils_ner.py` `bert_extract_item`): span 81.12, span + FGM 81.69
CLUENER dev F1 there.

With C = types + 1 classes per pointer (class 0: no entity starts, or ends,
here; class t + 1: type t), at each character with hidden state h:

    start = W_s h + b_s                                    (`span_start`)
    p     = one_hot(gold start class)   while training on a labelled batch
            softmax(start)              otherwise (evaluation, serving)
    end   = W_2 LayerNorm(tanh(W_1 [h; p] + b_1)) + b_2    (`span_end`)

so the end layer learns from gold starts (teacher forcing) and decodes from
the start layer's distribution. `scores` returns [B, M, 2C]: the start
logits, then the end logits. Both depend on their own position only, so
windows over long texts merge them per character (`per_position`) and
decode once.

Loss: the mean of the start and end cross-entropies at each character
(lonePatient averages each over the attention mask, `[CLS]` and `[SEP]`
included; kner's heads see the characters only), summed over characters;
`loss_count` counts them. With `--label_smoothing` eps > 0, each
cross-entropy is lonePatient's `LabelSmoothingCrossEntropy`:
(1 - eps) * NLL + eps / C * sum_c(-log p_c).

Decoding (`bert_extract_item`): the argmax class of each pointer; a start of
type t at character i pairs with the nearest end of type t at j >= i within
the text; a start with no such end gives no entity. An entity's score is the
mean of its start's and its end's probability of type t. One start per
character: a flat head (nested spans keep the outer one, `PointerTargets`).

Example:
>>> model = Tagger(backbone, labels, head="span", label_smoothing=0.1)
>>> model(batch).shape  # [batch, length - 1, 2 * (types + 1)]
"""

from __future__ import annotations

from typing import ClassVar

import keras
import tensorflow as tf

from kner.data.labels import LabelVocab
from kner.data.targets import PointerTargets
from kner.models.heads.base import Decoded, Head, Spans, Wrapper

# PyTorch's LayerNorm default, which lonePatient's end layer keeps.
LAYER_NORM_EPSILON = 1e-5


def initializer() -> keras.initializers.Initializer:
    """kner's head initialiser (BERT's truncated normal, stddev 0.02)."""
    return keras.initializers.TruncatedNormal(stddev=0.02)


class EndPointer(keras.layers.Layer):
    """lonePatient's `PoolerEndLogits`: [B, M, width] -> [B, M, classes] by
    dense (width -> width), tanh, LayerNorm, dense (-> classes); float32.

    Args:
        classes: C, the end classes (types + 1).
    """

    def __init__(self, classes: int, **kwargs):
        super().__init__(dtype="float32", **kwargs)
        self.classes = classes

    def build(self, input_shape) -> None:
        width = input_shape[-1]
        self.hidden = keras.layers.Dense(
            width, activation="tanh", kernel_initializer=initializer(), dtype="float32", name="hidden"
        )
        self.norm = keras.layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, dtype="float32", name="norm")
        self.logits = keras.layers.Dense(self.classes, kernel_initializer=initializer(), dtype="float32", name="logits")
        self.hidden.build(input_shape)
        self.norm.build(input_shape)
        self.logits.build(input_shape)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return self.logits(self.norm(self.hidden(inputs)))

    def get_config(self) -> dict:
        return {**super().get_config(), "classes": self.classes}


def smoothed_cross_entropy(logits: tf.Tensor, labels: tf.Tensor, smoothing: float) -> tf.Tensor:
    """Per position [...] from logits [..., C] and int labels [...]:
    (1 - eps) * NLL + eps / C * sum_c(-log p_c) (lonePatient's
    `LabelSmoothingCrossEntropy`; plain cross-entropy at eps = 0)."""
    log_p = tf.nn.log_softmax(logits, axis=-1)
    nll = -tf.gather(log_p, labels, batch_dims=labels.shape.rank)
    if not smoothing:
        return nll
    uniform = -tf.reduce_mean(log_p, axis=-1)  # sum_c(-log p_c) / C
    return (1.0 - smoothing) * nll + smoothing * uniform


def nearest_ends(start_class: tf.Tensor, end_class: tf.Tensor, classes: int) -> Spans:
    """`bert_extract_item` on a batch, in core TF ops: the spans pairing each
    start of class t > 0 at i with the first end of class t at j >= i.
    Memory O(B * M * classes), never [M, M].

    Args:
        start_class, end_class: [B, M] int32 classes in [0, classes), 0 past
            each row's length.
        classes: C, the pointer classes (types + 1).

    Returns:
        `Spans` ordered by row and start, `type` = class - 1, no score.
    """
    is_end = tf.one_hot(end_class, classes, dtype=tf.int32)  # [B, M, C]
    ends_before = tf.cumsum(is_end, axis=1, exclusive=True)  # [B, M, C]: ends of each class before i
    by_class = tf.transpose(is_end, [0, 2, 1])  # [B, C, M]
    # Every end as (row, class, j), grouped by (row, class), j ascending.
    end_at = tf.cast(tf.where(by_class > 0)[:, 2], tf.int32)
    ends = tf.reduce_sum(by_class, axis=2)  # [B, C]
    first_end = tf.reshape(tf.cumsum(tf.reshape(ends, [-1]), exclusive=True), tf.shape(ends))  # [B, C]
    start = tf.cast(tf.where(start_class > 0), tf.int32)  # [n, 2] (row, i), row-major
    cls = tf.gather_nd(start_class, start)
    row_class = tf.stack([start[:, 0], cls], axis=1)
    before = tf.gather_nd(ends_before, tf.concat([start, cls[:, None]], axis=1))
    # The k-th end of the class (k = ends before i) is the nearest at j >= i.
    paired = before < tf.gather_nd(ends, row_class)
    kept = tf.boolean_mask(start, paired)
    end = tf.gather(end_at, tf.boolean_mask(tf.gather_nd(first_end, row_class) + before, paired))
    row = kept[:, 0]
    return Spans(
        row=row,
        start=kept[:, 1],
        end=end,
        type=tf.boolean_mask(cls, paired) - 1,
        score=None,
        per_row=tf.math.unsorted_segment_sum(tf.ones_like(row), row, tf.shape(start_class)[0]),
    )


class SpanHead(Head):
    """See the module doc.

    Args:
        labels: the label vocabulary; the head points at its `types`.
        decoding: "nearest_end", the only one.
        label_smoothing: eps in [0, 1) of both cross-entropies.
    """

    name = "span"
    per_position: ClassVar[bool] = True
    decodings = ("nearest_end",)
    options = ("label_smoothing",)

    def __init__(self, labels: LabelVocab, decoding: str | None = None, label_smoothing: float = 0.0):
        super().__init__(labels, decoding)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"--label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)
        self.classes = len(labels.types) + 1
        self.span_start = keras.layers.Dense(
            self.classes, kernel_initializer=initializer(), dtype="float32", name="span_start"
        )
        self.span_end = EndPointer(self.classes, name="span_end")
        self.layers.update(span_start=self.span_start, span_end=self.span_end)

    @property
    def targets(self) -> PointerTargets:
        return PointerTargets(self.labels.types)

    @property
    def num_outputs(self) -> int:
        """Scores per position: C start logits, then C end logits."""
        return 2 * self.classes

    def scores(self, units: tf.Tensor, lengths: tf.Tensor, batch: dict | None, training: bool = False) -> tf.Tensor:
        """Start and end logits [B, M, 2C]; the end layer reads the gold
        starts (`start_ids`) when `training` on a batch that has them, else
        softmax(start logits)."""
        units = tf.cast(units, tf.float32)
        start = self.span_start(units)
        if training and batch is not None and "start_ids" in batch:
            distribution = tf.one_hot(batch["start_ids"], self.classes, dtype=tf.float32)
        else:
            distribution = tf.nn.softmax(start, axis=-1)
        end = self.span_end(tf.concat([units, distribution], axis=-1))
        return tf.concat([start, end], axis=-1)

    def split(self, scores: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """The start and the end logits [B, M, C] of `scores`."""
        return scores[..., : self.classes], scores[..., self.classes :]

    def loss_sum(self, scores: tf.Tensor, batch: dict, lengths: tf.Tensor) -> tf.Tensor:
        """(start + end cross-entropy) / 2, summed over characters."""
        start, end = self.split(scores)
        per_position = smoothed_cross_entropy(start, batch["start_ids"], self.label_smoothing)
        per_position += smoothed_cross_entropy(end, batch["end_ids"], self.label_smoothing)
        mask = tf.sequence_mask(lengths, tf.shape(scores)[1], dtype=tf.float32)
        return tf.reduce_sum(per_position * mask) / 2.0

    def loss_count(self, batch: dict, lengths: tf.Tensor) -> tf.Tensor:
        """Characters."""
        return tf.cast(tf.reduce_sum(lengths), tf.float32)

    def decode(self, scores: tf.Tensor, lengths: tf.Tensor, compiled: Wrapper | None = None) -> Decoded:
        """Entities (see the module doc) from scores [B, M, 2C] (nothing for `compiled` to wrap)."""
        start, end = self.split(scores)
        mask = tf.sequence_mask(lengths, tf.shape(scores)[1])
        start_class = tf.where(mask, tf.argmax(start, axis=-1, output_type=tf.int32), 0)
        end_class = tf.where(mask, tf.argmax(end, axis=-1, output_type=tf.int32), 0)
        spans = nearest_ends(start_class, end_class, self.classes)
        cls = spans.type + 1
        start_p = tf.gather_nd(tf.nn.softmax(start), tf.stack([spans.row, spans.start, cls], axis=1))
        end_p = tf.gather_nd(tf.nn.softmax(end), tf.stack([spans.row, spans.end, cls], axis=1))
        return Decoded(spans._replace(score=(start_p + end_p) / 2.0))
