"""What the tagging heads (softmax, CRF) share: one tag per character from
a dense layer over the tags, entity spans read from the tags in core TF ops,
the entity score, and the soft loss of task distillation.

The spans are read exactly as `LabelVocab.decode` reads them (lenient: an
orphan inside tag begins an entity, an unclosed one ends at its last tag),
in closed form (`span_bounds`), so the serving graph and the trainer's dev
pass find the same entities. An entity's score is the mean over its
characters of the softmax probability of the chosen tag under the
per-character tag scores (for the CRF: the emission scores, not CRF
marginals).
"""

from __future__ import annotations

from typing import ClassVar

import keras
import numpy as np
import tensorflow as tf

from kner.data.labels import LabelVocab
from kner.data.tags import OUTSIDE, split_tag
from kner.data.targets import TagTargets
from kner.models.distillation_losses import soft_loss_sum
from kner.models.heads.base import Decoded, Head, Spans, Wrapper

# Roles of a tag in span reading, whatever the scheme's letters.
OUT, BEGIN, INSIDE, END, SINGLE = range(5)
_ROLE_OF_PREFIX = {"B": BEGIN, "I": INSIDE, "M": INSIDE, "E": END, "S": SINGLE}


def tag_roles(tags: list[str], scheme: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Per tag id: its role (OUT, BEGIN, INSIDE, END, SINGLE) and its entity
    type id (-1 for `O`), with the list of type names."""
    roles, types, names = [], [], []
    for tag in tags:
        prefix, entity_type = split_tag(tag, scheme)
        if tag == OUTSIDE:
            roles.append(OUT)
            types.append(-1)
            continue
        if entity_type not in names:
            names.append(entity_type)
        roles.append(_ROLE_OF_PREFIX[prefix])
        types.append(names.index(entity_type))
    return np.array(roles, np.int32), np.array(types, np.int32), names


def span_bounds(tag_ids: tf.Tensor, roles: tf.Tensor, types: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Where entities start and end: two bool [B, L] masks over tag ids
    [B, L] (padding must be `O`, id 0); the k-th start of a row pairs with
    its k-th end.

    This is `kner.data.tags.tags_to_spans(strict=False)` in closed form: after a
    B- or inside tag an entity is open, and a tag continues it when it is an
    inside or end tag of the same type; any other non-`O` tag starts an
    entity; an entity ends at an end or single tag, or before a tag that
    does not continue it.
    """
    role = tf.gather(roles, tag_ids)
    entity_type = tf.gather(types, tag_ids)
    previous_role = tf.pad(role[:, :-1], [[0, 0], [1, 0]], constant_values=OUT)
    previous_type = tf.pad(entity_type[:, :-1], [[0, 0], [1, 0]], constant_values=-1)
    is_open = (previous_role == BEGIN) | (previous_role == INSIDE)
    continues = is_open & ((role == INSIDE) | (role == END)) & (entity_type == previous_type)
    tagged = role != OUT
    next_continues = tf.pad(continues[:, 1:], [[0, 0], [0, 1]])
    starts = tagged & ~continues
    ends = tagged & ((role == END) | (role == SINGLE) | ~next_continues)
    return starts, ends


class TagHead(Head):
    """A dense layer from the hidden states to one score per tag (float32
    whatever the backbone computes in: one [hidden, tags] matmul), decoded
    to one tag per character by `best_tags`."""

    per_position: ClassVar[bool] = True
    tagging: ClassVar[bool] = True
    distillable: ClassVar[bool] = True

    def __init__(self, labels: LabelVocab, decoding: str | None = None):
        super().__init__(labels, decoding)
        self.classifier = keras.layers.Dense(
            len(labels),
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            dtype="float32",
            name="classifier",
        )
        self.layers["classifier"] = self.classifier
        roles, types, names = tag_roles(labels.tags, labels.scheme)
        self._roles, self._types, self._type_names = roles, types, names
        self._tag_names = labels.tags

    @property
    def type_names(self) -> list[str]:
        return self._type_names

    @property
    def targets(self) -> TagTargets:
        return TagTargets(self.labels)

    @property
    def num_outputs(self) -> int:
        """Scores per position: one per tag."""
        return len(self.labels)

    def scores(self, units: tf.Tensor, lengths: tf.Tensor, batch: dict | None, training: bool = False) -> tf.Tensor:
        """Tag scores [B, M, tags] (the CRF's emission scores)."""
        return self.classifier(units)

    def best_tags(self, scores: tf.Tensor, mask: tf.Tensor, lengths: tf.Tensor) -> tf.Tensor:
        """Best tag ids [B, M] int32 from float32 scores [B, M, tags], a bool
        prefix `mask` [B, M] and its row sums `lengths`; 0 (`O`) where
        `mask` is False."""
        raise NotImplementedError

    def decode(self, scores: tf.Tensor, lengths: tf.Tensor, compiled: Wrapper | None = None) -> Decoded:
        """Tags and entities (see the module doc) from scores [B, M, tags];
        `best_tags` wrapped by `compiled` if given."""
        best_tags = compiled(self.best_tags) if compiled else self.best_tags
        # One padding column: Viterbi needs a position even when every text is empty.
        mask = tf.sequence_mask(lengths, tf.shape(scores)[1] + 1)
        tag_ids = best_tags(tf.pad(scores, [[0, 0], [0, 1], [0, 0]]), mask, lengths)[:, :-1]
        in_text = mask[:, :-1]
        tags = tf.where(in_text, tf.gather(tf.constant(self._tag_names, tf.string), tag_ids), "")
        probabilities = tf.nn.softmax(scores, axis=-1)
        chosen = tf.gather(probabilities, tag_ids, batch_dims=2)
        return Decoded(self.read_spans(tag_ids), tag_ids, tags, chosen)

    def read_spans(self, tag_ids: tf.Tensor) -> Spans:
        """The entity spans of tag ids [B, M] (0 past each row), without
        scores (see `Decoded.unit_scores`)."""
        types = tf.constant(self._types)
        starts, ends = span_bounds(tag_ids, tf.constant(self._roles), types)
        # [row, position] of each entity's first and last unit, row-major, so
        # the k-th start pairs with the k-th end.
        begin = tf.cast(tf.where(starts), tf.int32)
        return Spans(
            row=begin[:, 0],
            start=begin[:, 1],
            end=tf.cast(tf.where(ends)[:, 1], tf.int32),
            type=tf.gather(types, tf.gather_nd(tag_ids, begin)),
            score=None,
            per_row=tf.reduce_sum(tf.cast(starts, tf.int32), axis=1),
        )

    def soft_loss_sum(
        self, student: tf.Tensor, teacher: tf.Tensor, lengths: tf.Tensor, temperature: float
    ) -> tf.Tensor:
        """KL from the teacher's tag distributions to the student's at
        temperature T, summed over characters (for the CRF: over the emission
        scores)."""
        return soft_loss_sum(student, teacher, tf.sequence_mask(lengths, tf.shape(student)[1]), temperature)

    def soft_loss_count(self, lengths: tf.Tensor) -> tf.Tensor:
        return tf.cast(tf.reduce_sum(lengths), tf.float32)
