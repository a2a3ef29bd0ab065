"""The teacher-student losses that task distillation
(`kner.training.distillation`) and general distillation
(`kner.models.pretraining.general_distillation`) share, as sums over the
positions of a mask, so that a `tf.distribute` replica can divide them by a
count all-reduced over the global batch.

- `soft_loss_sum`: KL(softmax(teacher / T) || softmax(student / T)) per
  position, times T**2 with `temperature_squared` (`temperature_scale`), as Hinton et al. (2015,
  "Distilling the Knowledge in a Neural Network", section 2) and DistilBERT
  (huggingface/transformers `examples/research_projects/distillation/
  distiller.py`: `loss_ce * T**2`) scale it, so that its gradients keep
  their size whatever T (they shrink as 1/T**2 without: ~64x less at T = 8
  than at T = 1); without the factor it is TextBrewer's `kd_ce_loss`
  (airaria/TextBrewer `src/textbrewer/losses.py`) up to the teacher's
  entropy, a constant: the same gradients, and 0 when the student's scores
  equal the teacher's.
- `cosine_loss_sum`: 1 - cos(student state, teacher state) per position,
  DistilBERT's `loss_cos` (`nn.CosineEmbeddingLoss` with target 1 on the
  last hidden states of the non-padding tokens).

Example:
>>> soft = soft_loss_sum(student_logits, teacher_logits, mask, temperature=2.0, temperature_squared=True)
>>> cosine = cosine_loss_sum(student_states, teacher_states, padding_mask)
"""

from __future__ import annotations

import tensorflow as tf

# torch.nn.functional.cosine_embedding_loss's EPSILON: added to both squared norms.
COSINE_EPSILON = 1e-12


def temperature_scale(temperature: float, temperature_squared: bool) -> float:
    """The soft loss's factor: T**2 with `temperature_squared` (Hinton's and
    DistilBERT's scale), else 1 (TextBrewer's)."""
    return temperature**2 if temperature_squared else 1.0


def soft_loss_sum(
    student_scores: tf.Tensor,
    teacher_scores: tf.Tensor,
    mask: tf.Tensor,
    temperature: float,
    temperature_squared: bool = False,
) -> tf.Tensor:
    """Sum over the positions of `mask` of KL(softmax(teacher / T) ||
    softmax(student / T)), times T**2 with `temperature_squared` (module doc).

    Args:
        student_scores, teacher_scores: [batch, length, classes] float32
            logits (tags, vocab words, ...: the last axis is the
            distribution).
        mask: [batch, length] bool, the positions that count; the others
            add nothing, whatever their scores.
        temperature: T > 0.
        temperature_squared: multiply the sum by T**2.

    Returns:
        A float32 scalar (nats, summed over positions).
    """
    teacher_log_p = tf.nn.log_softmax(teacher_scores / temperature)
    student_log_p = tf.nn.log_softmax(student_scores / temperature)
    kl = tf.reduce_sum(tf.exp(teacher_log_p) * (teacher_log_p - student_log_p), axis=-1)
    total = tf.reduce_sum(tf.where(mask, kl, 0.0))
    return total * temperature_scale(temperature, temperature_squared)


def cosine_loss_sum(student_states: tf.Tensor, teacher_states: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Sum over the positions of `mask` of `1 - cos(student, teacher)`, the
    cosine of two [batch, length, width] states (equal widths; computed in
    float32) as PyTorch's `cosine_embedding_loss`: `s.t / sqrt((|s|^2 + eps)
    (|t|^2 + eps))`, eps 1e-12. Returns a float32 scalar in [0, 2 x
    positions]."""
    student = tf.cast(student_states, tf.float32)
    teacher = tf.cast(teacher_states, tf.float32)
    dot = tf.reduce_sum(student * teacher, axis=-1)
    norms = tf.sqrt(
        (tf.reduce_sum(tf.square(student), axis=-1) + COSINE_EPSILON)
        * (tf.reduce_sum(tf.square(teacher), axis=-1) + COSINE_EPSILON)
    )
    return tf.reduce_sum(tf.where(tf.cast(mask, tf.bool), 1.0 - dot / norms, 0.0))
