"""The teacher-student losses shared by task and general distillation: the
KL at a temperature (with and without T**2) and 1 - cos, against numbers
worked by hand and NumPy; masked positions never count."""

import math

import numpy as np
import pytest
import tensorflow as tf

from kner.models.distillation_losses import cosine_loss_sum, soft_loss_sum


def numpy_kl(student, teacher, temperature):
    def log_softmax(x):
        x = x / temperature
        return x - np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True)) - x.max(-1, keepdims=True)

    p = np.exp(log_softmax(teacher))
    return (p * (log_softmax(teacher) - log_softmax(student))).sum(-1)


def test_soft_loss_is_zero_for_equal_scores_and_the_kl_at_the_temperature_otherwise():
    rng = np.random.default_rng(0)
    teacher = rng.normal(size=(2, 5, 7)).astype(np.float32) * 3
    mask = tf.constant([[True] * 5, [True] * 3 + [False] * 2])
    assert float(soft_loss_sum(teacher, teacher, mask, 8.0)) == pytest.approx(0.0, abs=1e-6)
    student = teacher + rng.normal(size=teacher.shape).astype(np.float32)
    for temperature in (1.0, 2.0, 8.0):
        expected = (numpy_kl(student, teacher, temperature) * mask.numpy()).sum()
        got = float(soft_loss_sum(student, teacher, mask, temperature))
        assert got > 0 and got == pytest.approx(expected, rel=1e-4)
    # A higher temperature flattens both distributions: the divergence shrinks.
    assert float(soft_loss_sum(student, teacher, mask, 8.0)) < float(soft_loss_sum(student, teacher, mask, 1.0))
    # Masked positions do not count, whatever their scores.
    noisy = student.copy()
    noisy[1, 3:] += 100.0
    unmasked = float(soft_loss_sum(student, teacher, mask, 2.0))
    assert float(soft_loss_sum(noisy, teacher, mask, 2.0)) == pytest.approx(unmasked)


def test_the_shared_losses_on_numbers_worked_by_hand():
    # Teacher [1/4, 3/4], student [1/2, 1/2] at T = 1: KL = 1/4 ln(1/2) + 3/4 ln(3/2).
    teacher = tf.constant([[[0.0, math.log(3.0)]]])
    student = tf.constant([[[0.0, 0.0]]])
    mask = tf.constant([[True]])
    assert float(soft_loss_sum(student, teacher, mask, 1.0)) == pytest.approx(
        0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    )
    # At T = 2 the teacher is [1, sqrt 3] / (1 + sqrt 3); times T**2 = 4 with the factor.
    p = np.array([1.0, math.sqrt(3.0)]) / (1 + math.sqrt(3.0))
    kl = float((p * np.log(p / 0.5)).sum())
    assert float(soft_loss_sum(student, teacher, mask, 2.0)) == pytest.approx(kl, rel=1e-5)
    assert float(soft_loss_sum(student, teacher, mask, 2.0, temperature_squared=True)) == pytest.approx(
        4 * kl, rel=1e-5
    )
    # 1 - cos: orthogonal 1, same direction 0, opposite 2, 45 degrees 1 - 1/sqrt 2; the masked pair not at all.
    a = tf.constant([[[1.0, 0.0], [1.0, 1.0], [1.0, 0.0], [1.0, 0.0], [3.0, -7.0]]])
    b = tf.constant([[[0.0, 1.0], [2.0, 2.0], [-1.0, 0.0], [1.0, 1.0], [1.0, 1.0]]])
    mask = tf.constant([[True, True, True, True, False]])
    assert float(cosine_loss_sum(a, b, mask)) == pytest.approx(1 + 0 + 2 + (1 - 1 / math.sqrt(2)), rel=1e-6)
