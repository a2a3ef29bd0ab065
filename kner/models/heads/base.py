"""What every head is: the interface training, evaluation, distillation and
the serving graph call, and the span tensors its decoding produces.

A head turns the backbone's output at the *labelled units* (the characters:
`Tagger` hands a head `sequence[:, 1:]`, so head position i is character i,
and `lengths`, the units of each row: the first `lengths[b]` positions carry
labels) into scores, a loss and entity spans:

    scores = head.scores(units, lengths, batch, training)   # [B, M, K] or [B, types, M, M]
    loss = head.loss_sum(scores, batch, lengths) / head.loss_count(batch, lengths)
    decoded = head.decode(scores, lengths)                  # `Decoded`: spans (+ tags)

`batch` holds the targets its `targets` encoder (`kner.data.targets`) wrote;
a head may read them in `scores` while training (teacher forcing). Its weights
are the keras layers of `layers`, by name: `Tagger` tracks them under those
names, so weight files and checkpoints have one flat layout (`classifier`,
`crf`, `global_pointer`, ...).

Windows over long texts (`kner.serving.text_tagger`) need one more fact:
`per_position` heads (softmax, CRF, span) give scores per position, which windows
merge per character before one `decode` over the whole text; the other heads
(GlobalPointer) decode each window (`window_spans`), and the windows' spans
merge, then `select` applies the decoding option to each whole text.

Everything here is core TensorFlow (the serving graph runs it), float32.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, NamedTuple

import keras
import tensorflow as tf

from kner.data.labels import LabelVocab


class Spans(NamedTuple):
    """Entity spans of a batch, flat, grouped by row (ascending).

    Positions are unit positions (characters). `score` is None when the
    head scores an entity by its units (`Decoded.unit_scores`)."""

    row: tf.Tensor  # [n] int32, batch row of each span
    start: tf.Tensor  # [n] int32, first unit
    end: tf.Tensor  # [n] int32, last unit (inclusive)
    type: tf.Tensor  # [n] int32, index into the head's `type_names`
    score: tf.Tensor | None  # [n] float32
    per_row: tf.Tensor  # [B] int32, spans of each row


# What `Head.decode` may wrap its fixed-shape decoding in (`kner.serving.xla.compiled`).
Wrapper = Callable[[Callable], Callable]


class Decoded(NamedTuple):
    """What `Head.decode` returns.

    `tag_ids` [B, M] int32 (0 past a row's length) and `tags` [B, M] string
    ("" past it) exist for heads that tag (softmax, CRF), else None. A
    tagging head scores an entity by the mean over its units of
    `unit_scores` [B, M] float32 (the probability of each unit's chosen
    tag) instead of `spans.score`."""

    spans: Spans
    tag_ids: tf.Tensor | None = None
    tags: tf.Tensor | None = None
    unit_scores: tf.Tensor | None = None


class Head:
    """One output layer of a `Tagger`; subclasses set the class attributes
    and implement the methods below (see the module doc).

    Class attributes:
        name: the `--head` value and the registry key (`kner.models.heads.HEADS`).
        per_position: whether windows merge its scores per position.
        tagging: whether it tags a sequence (`Decoded.tags`; the tag scheme
            and seqeval apply).
        decodings: its `--decode` values, the default first.
        nested: whether it trains on, and finds, nested, crossing and
            same-extent spans (else the data must be flat: outer spans kept).
        distillable: whether task distillation can teach it (`soft_loss_sum`).
        options: the settings (and flags) its constructor takes besides
            `labels` and `decoding`.

    Args:
        labels: the label vocabulary (a pair head uses its `types` only).
        decoding: one of `decodings` (default: the first).
    """

    name: ClassVar[str]
    per_position: ClassVar[bool]
    tagging: ClassVar[bool] = False
    decodings: ClassVar[tuple[str, ...]]
    nested: ClassVar[bool] = False
    distillable: ClassVar[bool] = False
    options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, labels: LabelVocab, decoding: str | None = None):
        decoding = decoding or self.decodings[0]
        if decoding not in self.decodings:
            raise ValueError(
                f"--decode={decoding} does not apply to the {self.name} head (it takes {', '.join(self.decodings)})"
            )
        self.labels = labels
        self.decoding = decoding
        self.layers: dict[str, keras.layers.Layer] = {}

    # ---- what the rest of kner reads ---------------------------------------

    @property
    def type_names(self) -> list[str]:
        """Entity type of each type id in `Spans.type`."""
        return self.labels.types

    @property
    def targets(self):
        """The data-side encoder of its gold spans (`kner.data.targets`)."""
        raise NotImplementedError

    def settings(self) -> dict:
        """What `settings.json` keeps to rebuild it (`from_settings`)."""
        return {"decode": self.decoding, **{name: getattr(self, name) for name in self.options}}

    @classmethod
    def from_settings(cls, labels: LabelVocab, settings: dict) -> Head:
        """The head a `settings.json` describes."""
        options = {name: settings[name] for name in cls.options if name in settings}
        return cls(labels, decoding=settings.get("decode"), **options)

    # ---- computation -------------------------------------------------------

    def scores(self, units: tf.Tensor, lengths: tf.Tensor, batch: dict | None, training: bool = False) -> tf.Tensor:
        """float32 scores from the units [B, M, hidden] (after dropout)."""
        raise NotImplementedError

    def loss_sum(self, scores: tf.Tensor, batch: dict, lengths: tf.Tensor) -> tf.Tensor:
        """The loss summed over what `loss_count` counts (float32 scalar)."""
        raise NotImplementedError

    def loss_count(self, batch: dict, lengths: tf.Tensor) -> tf.Tensor:
        """What the loss is averaged over (float32 scalar): the trainer
        divides by its sum over the global batch."""
        raise NotImplementedError

    def decode(self, scores: tf.Tensor, lengths: tf.Tensor, compiled: Wrapper | None = None) -> Decoded:
        """The entities of texts that fit one window. `compiled`, if given,
        wraps the part of the decoding that has fixed shapes before it runs
        (the tagging heads' best tags; `kner.serving.xla.compiled` runs it
        under XLA); heads without one ignore it."""
        raise NotImplementedError

    def soft_loss_sum(
        self, student: tf.Tensor, teacher: tf.Tensor, lengths: tf.Tensor, temperature: float
    ) -> tf.Tensor:
        """Task distillation's soft loss, summed over what `soft_loss_count`
        counts (only where `distillable`)."""
        raise NotImplementedError(f"task distillation cannot teach the {self.name} head")

    def soft_loss_count(self, lengths: tf.Tensor) -> tf.Tensor:
        """What the soft loss is averaged over (float32 scalar)."""
        raise NotImplementedError(f"task distillation cannot teach the {self.name} head")
