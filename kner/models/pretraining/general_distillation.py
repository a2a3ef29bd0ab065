"""General distillation on raw text: a frozen teacher's masked LM teaches a
student BERT before any task, DistilBERT's recipe (Sanh et al. 2019;
huggingface/transformers `examples/research_projects/distillation/
distiller.py` and `scripts/extract_distilbert.py`).

Both read the same dynamically masked batch (`kner.data.masking`). The loss
has three terms, each a sum over the batch divided by its own count (all-
reduced over the global batch by the `Pretrainer`) and weighted:

- **soft** (`soft_loss_weight`, alpha, default 5): KL(teacher || student)
  of the masked-LM distributions over the vocab at temperature T (2), times
  T**2 with `soft_loss_t_squared` (on, as DistilBERT), per position
  (`kner.models.distillation_losses.soft_loss_sum`, the code task
  distillation uses). DistilBERT's `KLDivLoss(reduction="batchmean")` is
  this mean over the selected positions.
- **hard** (`hard_loss_weight`, beta, 2): the student's masked-LM cross
  entropy on the gold tokens, per masked position (Google's
  `masked_lm_weights`-weighted mean, as `masked_lm.masked_lm_sums`).
- **cosine** (`cosine_loss_weight`, gamma, 1): 1 - cos between the
  student's and the teacher's **last** hidden states, per non-padding token
  (DistilBERT's `loss_cos`; `cosine_loss_sum`). Where the widths differ the
  student's states go through a learned linear projection to the
  teacher's width (`hidden_projection="linear"`; it is trained with the
  student and not written to its checkpoint); without one that is an error.

**Which positions the KL covers** (`soft_loss_positions`): `"masked"` (the
default) takes the masked positions only, DistilBERT's
`restrict_ce_to_mask`; `"all"` takes every non-padding position,
DistilBERT's default. kner defaults to the masked ones because (1) its
masked-LM head, Google's `get_masked_lm_output`, projects only the at most
`max_predictions_per_seq` gathered positions onto the vocab, while every
position costs `max_seq_length / max_predictions_per_seq` (6.4 at 128 / 20)
times the head's FLOPs and memory for teacher and student (a [batch, 128,
21,128] float32 logit tensor is 346 MB at batch 32), which on a small
student dominates the step; and (2) the teacher's masked-LM head was
trained at masked positions only, so at an unmasked position its
distribution is mostly a copy of the visible input token, which the
student sees too. `"all"` is there to reproduce DistilBERT exactly.

**The teacher** (`load_teacher`): any BERT-family checkpoint kner loads
with its masked-LM head (Google TF1 BERT or ALBERT with `cls/predictions`,
or a Hugging Face `BertForMaskedLM`/`BertForPreTraining` directory with
`cls.predictions.*`). It is frozen (`trainable = False`), runs in inference
mode (no dropout) and its outputs are `stop_gradient`ed; it is not tracked
by this Keras model, so it is neither trained nor written to the training
checkpoints: a resumed run reads it again from its checkpoint.

**The student** is a BERT with the teacher's vocab. With
`init_student_from_teacher_layers` (DistilBERT's `extract_distilbert.py`:
layers 0, 2, 4, 7, 9, 11 of a 12-layer teacher) it starts as a copy of the
teacher's embeddings, pooler and masked-LM head and, for its layer `i`, the
teacher's layer `layers[i]`; this needs the student's shape (width,
feed-forward size, heads, positions, segment types) to equal the teacher's.

Its output (`save_checkpoint`) is the student alone: a Google-layout BERT
with its `cls/predictions` head, which `kner.train --init_checkpoint`,
`kner.distill --init_checkpoint` and `kner.pretrain --init_checkpoint` take.

Example:
>>> teacher = load_teacher("runs/pretrain_4L", max_seq_length=128)
>>> options = DistillationOptions(teacher, init_student_from_teacher_layers=(0, 2))
>>> model = GeneralDistillationModel(student_backbone, options)
>>> outputs = model(features, training=True)  # masked_lm_logits, teacher_masked_lm_logits, ...
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import keras
import keras_hub
import tensorflow as tf

from kner.backbones import bert_heads, huggingface
from kner.backbones.loader import FAMILIES, family_of, load_backbone, locate_checkpoint
from kner.backbones.tf1_checkpoint import read_variables
from kner.backbones.weight_table import Weight, assign_arrays
from kner.errors import InputError
from kner.models.distillation_losses import cosine_loss_sum, soft_loss_sum
from kner.models.pretraining.masked_lm import MaskedLMModel, dummy_features, masked_lm_sums
from kner.models.pretraining.objective import LossTerm, PretrainingModel

SOFT_LOSS_POSITIONS = ("masked", "all")
HIDDEN_PROJECTIONS = ("none", "linear")
# The shape a student must share with the teacher to copy its layers: backbone attribute -> config key.
COPIED_SHAPE = {
    "hidden_dim": "hidden_size",
    "intermediate_dim": "intermediate_size",
    "num_heads": "num_attention_heads",
    "max_sequence_length": "max_position_embeddings",
    "num_segments": "type_vocab_size",
    "vocabulary_size": "vocab_size",
}
LAYER_NAME = re.compile(r"^bert/encoder/layer_(\d+)/")


@dataclasses.dataclass(frozen=True)
class DistillationOptions:
    """The teacher and the loss of general distillation (module doc); the
    field names are `kner.pretrain`'s flags, their defaults DistilBERT's."""

    teacher: MaskedLMModel
    init_student_from_teacher_layers: tuple[int, ...] = ()
    temperature: float = 2.0
    soft_loss_weight: float = 5.0
    soft_loss_t_squared: bool = True
    hard_loss_weight: float = 2.0
    cosine_loss_weight: float = 1.0
    hidden_projection: str = "none"
    soft_loss_positions: str = "masked"


def load_teacher(path: str | Path, max_seq_length: int | None = None) -> MaskedLMModel:
    """The teacher at `path` with its masked-LM head, frozen.

    Raises:
        InputError: the checkpoint is not one kner loads, or has no
            masked-LM head (`cls/predictions`: an encoder-only release, an
            ELECTRA discriminator, a fine-tuned tagger).
    """
    files = locate_checkpoint(path)
    if files.family == "electra":
        raise InputError(path, None, "an ELECTRA discriminator has no masked-LM head to teach with")
    teacher = MaskedLMModel(load_backbone(path, max_seq_length))
    teacher(dummy_features())
    weights = teacher.heads()[bert_heads.MASKED_LM]
    if files.format == "google" and bert_heads.MASKED_LM in bert_heads.heads_in(read_variables(files.weights)):
        bert_heads.assign_head_weights(files.weights, weights)
    elif files.format == "huggingface" and huggingface.has_masked_lm_head(files.weights):
        head = huggingface.read_masked_lm_head(files.weights)
        shapes = {name: value.shape for name, value in head.items()}
        assign_arrays(weights, files.weights, shapes, head.__getitem__, "the teacher's config")
    else:
        expected = {"google": f"{bert_heads.SCOPES[bert_heads.MASKED_LM]}/*", "huggingface": "cls.predictions.*"}
        where = f" ({expected[files.format]})" if files.format in expected else ""
        raise InputError(path, None, f"no masked-LM head{where} to teach with: the teacher needs one")
    teacher.trainable = False
    return teacher


def check_copyable(student: keras_hub.models.Backbone, teacher: keras_hub.models.Backbone, layers: Sequence[int]):
    """ValueError (one line) unless the student can start from the
    teacher's `layers`: both Google-layout BERTs of the same shape, one
    teacher layer per student layer, each in range."""
    for name, backbone in (("student", student), ("teacher", teacher)):
        if family_of(backbone) != "bert":
            raise ValueError(f"the {name} is a {family_of(backbone)} model: copying layers needs two BERTs")
    for attribute, key in COPIED_SHAPE.items():
        mine, theirs = getattr(student, attribute), getattr(teacher, attribute)
        if mine != theirs:
            raise ValueError(
                f"the student has {key} {mine} and the teacher {theirs}: copying teacher layers needs equal "
                f"{key} (give a student config with {key} {theirs}, or start the student from scratch)"
            )
    if len(layers) != student.num_layers:
        raise ValueError(f"{len(layers)} teacher layers named for a student of {student.num_layers} layers")
    for layer in layers:
        if not 0 <= layer < teacher.num_layers:
            last = teacher.num_layers - 1
            raise ValueError(f"teacher layer {layer} is out of range: the teacher has layers 0-{last}")


def init_student_from_teacher(student: MaskedLMModel, teacher: MaskedLMModel, layers: Sequence[int]) -> None:
    """Copies the teacher's embeddings, pooler and masked-LM head into the
    (built) student, and teacher layer `layers[i]` into student layer `i`
    (`check_copyable` first). Each weight is matched by its Google
    checkpoint name, the layer number renumbered."""
    check_copyable(student.backbone, teacher.backbone, layers)
    table = FAMILIES["bert"].weight_table

    def source_name(name: str) -> str:
        return LAYER_NAME.sub(lambda m: f"bert/encoder/layer_{layers[int(m.group(1))]}/", name)

    source = {w.name: w.variable for w in table(teacher.backbone) + teacher.head_weights()}
    for weight in table(student.backbone) + student.head_weights():
        weight.variable.assign(source[source_name(weight.name)])


class GeneralDistillationModel(PretrainingModel):
    """Student BERT + frozen teacher, trained on DistilBERT's loss (module doc).

    Args:
        backbone: the student's encoder, built from its config or a
            checkpoint, with the teacher's vocab.
        options: the teacher and the loss.

    Raises:
        ValueError (one line): no loss term with a weight, a vocab size
            other than the teacher's, widths that differ without a
            projection, layers that cannot be copied, an unknown option.

    `call` returns float32 `masked_lm_logits` and `teacher_masked_lm_logits`
    `[batch, predictions, vocab]`, with `soft_loss_positions="all"` also
    `student_logits` and `teacher_logits` `[batch, length, vocab]`, and the
    last hidden states `sequence_output` (projected to the teacher's width
    when there is a projection) and `teacher_sequence_output`.
    """

    best_metric = "masked_lm_accuracy"

    def __init__(self, backbone: keras_hub.models.Backbone, options: DistillationOptions, **kwargs):
        super().__init__(**kwargs)
        if options.soft_loss_positions not in SOFT_LOSS_POSITIONS:
            raise ValueError(f"soft_loss_positions must be one of {SOFT_LOSS_POSITIONS}")
        if options.hidden_projection not in HIDDEN_PROJECTIONS:
            raise ValueError(f"hidden_projection must be one of {HIDDEN_PROJECTIONS}")
        if options.temperature <= 0:
            raise ValueError(f"the temperature must be > 0, got {options.temperature}")
        teacher = options.teacher
        if backbone.vocabulary_size != teacher.backbone.vocabulary_size:
            raise ValueError(
                f"the student's vocab has {backbone.vocabulary_size} tokens and the teacher's "
                f"{teacher.backbone.vocabulary_size}: general distillation needs the teacher's vocab"
            )
        layers = tuple(options.init_student_from_teacher_layers)
        if layers:
            check_copyable(backbone, teacher.backbone, layers)
        self.options = options
        self.student = MaskedLMModel(backbone)
        self.teacher = teacher  # not tracked (`__setattr__`): frozen, re-read on resume
        teacher.trainable = False
        student_width, teacher_width = backbone.hidden_dim, teacher.backbone.hidden_dim
        self.projection = None
        if options.cosine_loss_weight and student_width != teacher_width:
            if options.hidden_projection != "linear":
                raise ValueError(
                    f"the student's hidden states are {student_width} wide and the teacher's {teacher_width}: "
                    "the cosine loss needs a projection (hidden_projection linear) or no weight"
                )
            self.projection = keras.layers.Dense(teacher_width, name="hidden_projection", dtype=backbone.dtype_policy)
            self.projection.build((None, None, student_width))
        self.student(dummy_features())
        if layers:
            init_student_from_teacher(self.student, teacher, layers)
        positions = "masked_lm_count" if options.soft_loss_positions == "masked" else "tokens"
        terms = (
            LossTerm("soft_loss", positions, options.soft_loss_weight),
            LossTerm("masked_lm_loss", "masked_lm_count", options.hard_loss_weight),
            LossTerm("cosine_loss", "tokens", options.cosine_loss_weight),
        )
        self._loss_terms = tuple(term for term in terms if term.weight)
        if not self._loss_terms:
            raise ValueError("every loss weight is 0: give the soft, hard or cosine loss a weight")

    def __setattr__(self, name, value):
        if name in ("teacher", "options"):  # keep the frozen teacher out of Keras' tracking and checkpoints
            object.__setattr__(self, name, value)
            return
        super().__setattr__(name, value)

    @property
    def backbone(self) -> keras_hub.models.Backbone:
        """The student's encoder: what is pretrained and written."""
        return self.student.backbone

    @property
    def loss_terms(self) -> tuple[LossTerm, ...]:
        """soft (KL x T**2 per position), masked_lm_loss (per masked
        position) and cosine_loss (per token), those with a weight."""
        return self._loss_terms

    def call(self, features: dict[str, tf.Tensor], training: bool = False) -> dict[str, tf.Tensor]:
        every = self.options.soft_loss_positions == "all"
        masked = features["masked_lm_positions"]
        positions = masked
        if every:
            shape = tf.shape(features["token_ids"])
            positions = tf.broadcast_to(tf.range(shape[1])[None, :], shape)
        states, logits = _encode(self.student, features, positions, training)
        teacher_states, teacher_logits = _encode(self.teacher, features, positions, False)
        teacher_states, teacher_logits = tf.stop_gradient(teacher_states), tf.stop_gradient(teacher_logits)
        outputs = {
            "sequence_output": self.projection(states) if self.projection is not None else states,
            "teacher_sequence_output": teacher_states,
        }
        if every:
            outputs["student_logits"], outputs["teacher_logits"] = logits, teacher_logits
            logits = tf.gather(logits, masked, batch_dims=1)
            teacher_logits = tf.gather(teacher_logits, masked, batch_dims=1)
        outputs["masked_lm_logits"], outputs["teacher_masked_lm_logits"] = logits, teacher_logits
        return outputs

    def loss_sums(self, features: dict[str, tf.Tensor], outputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """The student's `masked_lm_*` sums and `examples` (as
        `masked_lm_sums`), `teacher_masked_lm_correct`, `tokens` (non-padding),
        and each weighted term's sum: `soft_loss` (KL x T**2 summed over the
        positions), `cosine_loss` (1 - cos summed over tokens)."""
        options = self.options
        sums = masked_lm_sums(features, outputs["masked_lm_logits"])
        teacher = masked_lm_sums(features, outputs["teacher_masked_lm_logits"])
        sums["teacher_masked_lm_correct"] = teacher["masked_lm_correct"]
        padding_mask = tf.cast(features["padding_mask"], tf.bool)
        sums["tokens"] = tf.reduce_sum(tf.cast(padding_mask, tf.float32))
        if options.soft_loss_weight:
            if options.soft_loss_positions == "all":
                scores, mask = (outputs["student_logits"], outputs["teacher_logits"]), padding_mask
            else:
                scores = (outputs["masked_lm_logits"], outputs["teacher_masked_lm_logits"])
                mask = features["masked_lm_weights"] > 0
            sums["soft_loss"] = soft_loss_sum(*scores, mask, options.temperature, options.soft_loss_t_squared)
        if options.cosine_loss_weight:
            sums["cosine_loss"] = cosine_loss_sum(
                outputs["sequence_output"], outputs["teacher_sequence_output"], padding_mask
            )
        return sums

    def loss_counts(self, features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return {
            "masked_lm_count": tf.reduce_sum(features["masked_lm_weights"]),
            "tokens": tf.reduce_sum(tf.cast(features["padding_mask"], tf.float32)),
            "examples": tf.cast(tf.shape(features["token_ids"])[0], tf.float32),
        }

    def report(self, totals: Mapping[str, float]) -> dict[str, float | int]:
        """The student's `masked_lm_accuracy`, `masked_lm_loss` (per
        prediction), `masked_lm_predictions`, `examples`; the teacher's
        `teacher_masked_lm_accuracy` on the same masks; and per its count
        each weighted term: `soft_loss`, `cosine_loss`."""
        report = self.student.report(totals)
        count = max(totals.get("masked_lm_count", 0.0), 1.0)
        report["teacher_masked_lm_accuracy"] = totals.get("teacher_masked_lm_correct", 0.0) / count
        counts = {"masked_lm_count": count, "tokens": max(totals.get("tokens", 0.0), 1.0)}
        for term in self.loss_terms:
            if term.sum != "masked_lm_loss":
                report[term.sum] = totals.get(term.sum, 0.0) / counts[term.count]
        return report

    def describe(self) -> str:
        """` taught by a frozen teacher: 5 x KL x T**2 (T=2, masked
        positions) + 2 x masked LM + 1 x (1 - cos) of the last hidden
        states (projected 128 -> 256)`."""
        options = self.options
        scale = " x T**2" if options.soft_loss_t_squared else ""
        states = "(1 - cos) of the last hidden states"
        if self.projection is not None:
            states += f" (projected {self.backbone.hidden_dim} -> {self.projection.units})"
        terms = {
            f"KL{scale} (T={options.temperature:g}, {options.soft_loss_positions} positions)": options.soft_loss_weight,
            "masked LM": options.hard_loss_weight,
            states: options.cosine_loss_weight,
        }
        loss = " + ".join(f"{weight:g} x {term}" for term, weight in terms.items() if weight)
        return f" taught by a frozen teacher: {loss}"

    def describe_head(self, head: str) -> str:
        return self.student.describe_head(head)

    def heads(self) -> dict[str, list[Weight]]:
        """The student's heads that `--init_checkpoint` loads; none when
        they were copied from the teacher."""
        return {} if self.options.init_student_from_teacher_layers else self.student.heads()

    def save_checkpoint(self, directory: str | Path, vocab_file: str | Path) -> tuple[Path, str]:
        """The student (module doc)."""
        prefix, contents = self.student.save_checkpoint(directory, vocab_file)
        return prefix, f"the student: {contents}"


def _encode(model: MaskedLMModel, features: dict[str, tf.Tensor], positions: tf.Tensor, training: bool):
    """A masked-LM model's last hidden states `[batch, length, hidden]` and
    float32 vocab logits at `positions` `[batch, positions, vocab]`."""
    inputs = {key: features[key] for key in ("token_ids", "segment_ids", "padding_mask")}
    states = model.backbone(inputs, training=training)["sequence_output"]
    return states, model.masked_lm_head(states, positions)
