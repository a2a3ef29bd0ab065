"""Knowledge distillation of a tagger: a frozen teacher teaches a student.

`Distiller` wraps a student `Tagger` and a trained teacher `Tagger` into one
model that `kner.training.trainer.Trainer` trains like any tagger (every
strategy, checkpoints, resume, dev evaluation of the student). Its loss has
three terms, each normalised by its own global count and weighted:

- **soft** (`soft_weight`): the KL divergence from the teacher's tag
  distribution to the student's, both at temperature T, summed over tags
  and averaged over character positions (`Head.soft_loss_sum`; only heads
  with a distribution per character take it: softmax and CRF, not
  GlobalPointer), the KL and T**2 scale of
  `kner.models.distillation_losses`, which general distillation shares. It differs from TextBrewer's
  `kd_ce_loss` (airaria/TextBrewer, `src/textbrewer/losses.py`: the cross
  entropy `-(softmax(t / T) * log_softmax(s / T)).sum(-1).mean()` over the
  positions `select_logits_with_mask` keeps) by the teacher's entropy, a
  constant, so the gradients are the same and the loss is 0 when the
  student's scores equal the teacher's. `temperature_squared` multiplies
  it by T**2, as Hinton et al. (2015, "Distilling the Knowledge in a Neural
  Network", section 2) and DistilBERT (huggingface/transformers
  `examples/research_projects/distillation/distiller.py`: `loss_ce * T**2`)
  do, so that its gradients keep their size whatever T (they shrink as
  1/T**2 without: ~64x less at T = 8 than at T = 1); off, the default, is
  TextBrewer's `kd_ce_loss`, which has no such factor (its recipes weight
  the soft loss 1 at T = 8). For a CRF head the "logits" are the emission
  scores.
- **hard** (`hard_weight`): the student head's own loss on the gold labels
  (`Tagger.loss_sum`: CRF negative log-likelihood per sentence, or softmax
  cross-entropy per character). TextBrewer's default weight is 0.
- **hidden** (`hidden_weight`): for each `(student layer, teacher layer)`
  of `layer_map`, the mean squared difference between the student's hidden
  state (through a learned linear projection when the widths differ) and
  the teacher's, averaged over features and over non-padding tokens, summed
  over the pairs: TextBrewer's `hid_mse_loss` with its `proj: linear`
  option. States are numbered as in `kner.backbones.hidden_states` (0: the
  embeddings), and the default map spaces the student's layers evenly over
  the teacher's (`even_layer_map`: 0-0, 1-2, 2-4 for 2 layers under 4).

Raw text in the batch (`unlabeled_*` features, `kner.data.unlabeled`) is
labelled by the teacher in the same step and adds to the soft and hidden
terms (it has no hard labels).

CRF transitions: a CRF student of a CRF teacher starts with the teacher's
transition scores (`transitions="copy"`), which only the hard loss changes
afterwards (without one they are frozen); `"learn"` starts them at zero and
learns them from the hard labels. The soft loss teaches the emission scores, with which the copied
transitions form the teacher's own CRF. bench/README.md ("Distillation")
has the measurement behind the default.

The teacher is never trained: it is not trackable as trainable
(`teacher.trainable = False`), runs in inference mode and its outputs are
`stop_gradient`ed.

Example:
>>> distiller = Distiller(student, teacher, temperature=8.0, hidden_weight=1.0)
>>> outputs = distiller(batch, training=True)
>>> loss = tf.reduce_sum(distiller.loss_sum(batch, outputs) / distiller.loss_count(batch))
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from kner.backbones.hidden_states import hidden_state_model
from kner.data.unlabeled import PREFIX
from kner.models.distillation_losses import temperature_scale
from kner.models.tagger import Tagger

TRANSITIONS = ("copy", "learn")
FEATURES = ("token_ids", "segment_ids", "padding_mask")
# The terms of `Distiller.loss_sum`, in order.
TERMS = ("soft", "hard", "hidden")


def hidden_loss_sum(student_state: tf.Tensor, teacher_state: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Sum over the positions of `mask` of the mean over features of the
    squared difference of two [batch, length, width] states: times the
    count of positions, TextBrewer's `hid_mse_loss`."""
    difference = tf.cast(student_state, tf.float32) - tf.cast(teacher_state, tf.float32)
    per_token = tf.reduce_mean(tf.square(difference), axis=-1)
    return tf.reduce_sum(tf.where(mask, per_token, 0.0))


def even_layer_map(student_layers: int, teacher_layers: int) -> list[tuple[int, int]]:
    """Student hidden state i (0..student_layers) to teacher state
    round(i * teacher_layers / student_layers): the embeddings to the
    embeddings, the last layer to the last layer, evenly spaced between
    (TextBrewer's `L3_hidden_mse` preset maps 0, 1, 2, 3 to 0, 4, 8, 12)."""
    return [(i, math.floor(i * teacher_layers / student_layers + 0.5)) for i in range(student_layers + 1)]


def parse_layer_map(spec: str, student_layers: int, teacher_layers: int) -> list[tuple[int, int]]:
    """`"0:0,1:2,2:4"` (student state:teacher state, comma-separated) as
    pairs; an empty spec is `even_layer_map`. ValueError naming the bad pair."""
    if not spec.strip():
        return even_layer_map(student_layers, teacher_layers)
    pairs = []
    for part in spec.split(","):
        try:
            student, teacher = (int(x) for x in part.split(":"))
        except ValueError:
            raise ValueError(f"{part.strip()!r} is not STUDENT:TEACHER (two layer numbers)") from None
        if not (0 <= student <= student_layers and 0 <= teacher <= teacher_layers):
            message = f"{student}:{teacher} is out of range: the student has states 0-{student_layers}"
            raise ValueError(f"{message}, the teacher 0-{teacher_layers} (0 is the embeddings)")
        pairs.append((student, teacher))
    return pairs


def teacher_token_ids(student_vocabulary: list[str], teacher_vocabulary: list[str], teacher_unk: int) -> list[int]:
    """For each student token id, the teacher's id of the same token
    (`teacher_unk` when the teacher lacks it): how the teacher reads the
    student's batches when their vocabularies differ."""
    ids = {token: i for i, token in reversed(list(enumerate(teacher_vocabulary)))}
    return [ids.get(token, teacher_unk) for token in student_vocabulary]


class Distiller(keras.Model):
    """Student + frozen teacher, trained on the distillation loss (module doc).

    Args:
        student: the `Tagger` to train, built.
        teacher: the trained `Tagger`, with its weights loaded; same labels.
        temperature: T of the soft loss.
        temperature_squared: multiply the soft loss by T**2 (Hinton's and
            DistilBERT's scale; off: TextBrewer's, see module doc).
        soft_weight, hard_weight, hidden_weight: the loss terms' weights.
        layer_map: `(student state, teacher state)` pairs of the hidden loss
            (default `even_layer_map`).
        transitions: "copy" or "learn", for a CRF student (see module doc).
        teacher_ids: student token id -> teacher token id
            (`teacher_token_ids`), when the vocabularies differ.

    Raises:
        ValueError: different label vocabularies, a head task distillation
            cannot teach (`Head.distillable`), a bad layer map, a
            temperature <= 0, or CRF transitions nothing would teach.

    `call` returns a dict: `scores`, the student's tag scores [batch,
    length - 1, tags] (what `decode` reads), the teacher's `teacher_scores`,
    the matched hidden states, and the same for the raw-text batch under
    `unlabeled` when the batch has one.
    """

    def __init__(
        self,
        student: Tagger,
        teacher: Tagger,
        temperature: float = 8.0,
        temperature_squared: bool = False,
        soft_weight: float = 1.0,
        hard_weight: float = 0.0,
        hidden_weight: float = 1.0,
        layer_map: list[tuple[int, int]] | None = None,
        transitions: str = "copy",
        teacher_ids: list[int] | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if (student.labels.tags, student.labels.scheme) != (teacher.labels.tags, teacher.labels.scheme):
            raise ValueError(
                f"the student's labels ({student.labels.scheme}: {len(student.labels)} tags) differ from "
                f"the teacher's ({teacher.labels.scheme}: {len(teacher.labels)} tags)"
            )
        for role, model in (("student", student), ("teacher", teacher)):
            if not model.head.distillable:
                raise ValueError(f"task distillation cannot teach or learn from the {model.head.name} head ({role})")
        if temperature <= 0:
            raise ValueError(f"the temperature must be > 0, got {temperature}")
        if transitions not in TRANSITIONS:
            raise ValueError(f"transitions must be one of {TRANSITIONS}, got {transitions!r}")
        student_layers, teacher_layers = student.backbone.num_layers, teacher.backbone.num_layers
        self.layer_map = list(layer_map or even_layer_map(student_layers, teacher_layers))
        parse_layer_map(",".join(f"{s}:{t}" for s, t in self.layer_map), student_layers, teacher_layers)
        self.student, self.teacher = student, teacher
        teacher.trainable = False
        self.temperature = float(temperature)
        self.temperature_squared = bool(temperature_squared)
        self.weights_by_term = {"soft": soft_weight, "hard": hard_weight, "hidden": hidden_weight}
        # Not tracked as layers: they share the backbones' layers.
        self._states = {
            "student": hidden_state_model(student.backbone),
            "teacher": hidden_state_model(teacher.backbone),
        }
        width = teacher.backbone.hidden_dim
        self.projections = []
        if hidden_weight and student.backbone.hidden_dim != width:
            self.projections = [
                keras.layers.Dense(width, name=f"projection_{s}_{t}", dtype=student.dtype_policy)
                for s, t in self.layer_map
            ]
            for projection in self.projections:
                projection.build((None, None, student.backbone.hidden_dim))
        self.teacher_ids = None if teacher_ids is None else tf.constant(teacher_ids, tf.int32)
        self.transitions = None
        if hasattr(student, "crf"):
            self.transitions = transitions if hasattr(teacher, "crf") else "learn"
            if self.transitions == "learn" and not hard_weight:
                raise ValueError("a CRF student learns its transitions from the hard loss: give it a weight > 0")
            if self.transitions == "copy":
                for name in ("transitions", "start_transitions", "end_transitions"):
                    getattr(student.crf, name).assign(getattr(teacher.crf, name))
                # Without a hard loss nothing would change them: frozen.
                student.crf.trainable = bool(hard_weight)

    def __setattr__(self, name, value):
        if name == "_states":  # keep the shared-layer models out of Keras' tracking
            object.__setattr__(self, name, value)
            return
        super().__setattr__(name, value)

    @property
    def labels(self):
        return self.student.labels

    @property
    def targets(self):
        return self.student.targets

    @property
    def loss_terms(self) -> dict[str, float]:
        """Name -> weight of each entry of `loss_sum` (`TERMS`): how
        `Trainer` logs each term unweighted to TensorBoard."""
        return {term: float(self.weights_by_term[term]) for term in TERMS}

    def head_layers(self) -> list[keras.layers.Layer]:
        """The student's head layers (trained with the head learning rate)."""
        return self.student.head_layers()

    def _pass(self, features: dict[str, tf.Tensor], training: bool) -> dict:
        inputs = {k: features[k] for k in FEATURES}
        states = self._states["student"](inputs, training=training)
        teacher_inputs = dict(inputs)
        if self.teacher_ids is not None:
            teacher_inputs["token_ids"] = tf.gather(self.teacher_ids, features["token_ids"])
        teacher_states = [tf.stop_gradient(s) for s in self._states["teacher"](teacher_inputs, training=False)]
        outputs = {
            "scores": self.student.head_scores(states[-1], features, training=training),
            "teacher_scores": tf.stop_gradient(self.teacher.head_scores(teacher_states[-1], features)),
        }
        if self.weights_by_term["hidden"]:
            project = self.projections or [lambda x: x] * len(self.layer_map)
            outputs["student_states"] = [p(states[s]) for p, (s, _) in zip(project, self.layer_map)]
            outputs["teacher_states"] = [teacher_states[t] for _, t in self.layer_map]
        return outputs

    def call(self, batch: dict[str, tf.Tensor], training: bool = False) -> dict:
        outputs = self._pass(batch, training)
        if PREFIX + "token_ids" in batch:
            outputs["unlabeled"] = self._pass(self._unlabeled(batch), training)
        return outputs

    @staticmethod
    def _unlabeled(batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """The raw-text part of a batch, without its prefix."""
        return {k.removeprefix(PREFIX): v for k, v in batch.items() if k.startswith(PREFIX)}

    def _parts(self, batch: dict[str, tf.Tensor]) -> list[tuple[str, dict[str, tf.Tensor]]]:
        """(key of the outputs, features) of each part of the batch."""
        parts = [("", batch)]
        if PREFIX + "padding_mask" in batch:
            parts.append(("unlabeled", self._unlabeled(batch)))
        return parts

    def loss_count(self, batch: dict[str, tf.Tensor]) -> tf.Tensor:
        """[characters, the hard loss's count, tokens] of the batch (3,)."""
        chars = tokens = 0.0
        head = self.student.head
        for _, features in self._parts(batch):
            chars += head.soft_loss_count(self.student.lengths(features))
            tokens += tf.reduce_sum(tf.cast(features["padding_mask"], tf.float32))
        return tf.stack([chars, self.student.loss_count(batch), tokens])

    def loss_sum(self, batch: dict[str, tf.Tensor], outputs: dict) -> tf.Tensor:
        """The weighted [soft, hard, hidden] loss sums (3,) float32 (`TERMS`)."""
        sums = dict.fromkeys(TERMS, tf.constant(0.0))
        head = self.student.head
        for key, features in self._parts(batch):
            part = outputs[key] if key else outputs
            if self.weights_by_term["soft"]:
                lengths = self.student.lengths(features)
                soft = head.soft_loss_sum(part["scores"], part["teacher_scores"], lengths, self.temperature)
                sums["soft"] += soft * temperature_scale(self.temperature, self.temperature_squared)
            if self.weights_by_term["hidden"]:
                mask = tf.cast(features["padding_mask"], tf.bool)
                for student, teacher in zip(part["student_states"], part["teacher_states"]):
                    sums["hidden"] += hidden_loss_sum(student, teacher, mask)
        if self.weights_by_term["hard"]:
            sums["hard"] = self.student.loss_sum(batch, outputs["scores"])
        return tf.stack([self.weights_by_term[term] * sums[term] for term in TERMS])

    def decode(self, batch: dict[str, tf.Tensor], outputs: dict):
        """The student's entities and tags (`kner.models.heads.Decoded`)."""
        return self.student.decode(batch, outputs["scores"])
