"""Distils a tiny teacher (2 layers, 48 wide) into a tiny student (1 layer,
32 wide: projected hidden states) for one epoch of 3 steps (global batches of
4, 4 and 3 sentences, each with 4 raw texts) under each STRATEGY, and saves
the per-step losses and loss terms (read back from TensorBoard) and the
weights: the child process of `tests/training/test_distillation.py`, which
needs a fresh process to set up two logical CPUs.

    python tests/distill_child.py OUT STRATEGY [STRATEGY ...]

STRATEGY is `default` or `mirrored`; each run trains in OUT/STRATEGY and
writes OUT/STRATEGY.npz holding `losses`, `terms` (soft, hard and hidden
unweighted, one row each), the student's weights `s0`, `s1`, ... and the
teacher's `t0`, `t1`, ...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tagger_dirs import TYPES, tiny_config, toy_vocabulary
from train_runs import read_scalars, toy_sentences

from kner.checkpoint import backbone_from_config
from kner.data.labels import LabelVocab
from kner.data.tokenizer import CharTokenizer
from kner.data.unlabeled import UnlabeledInputs
from kner.models import artifacts
from kner.models.tagger import Tagger
from kner.training.distillation import Distiller
from kner.training.optimization import FineTuningAdamW, WarmupLinearDecay
from kner.training.trainer import TrainConfig, Trainer

CONFIG = TrainConfig(batch_size=4, eval_batch_size=8, epochs=1, checkpoint_every=0, log_every=1, seed=3)
STEPS = 3


def tagger(layers: int, width: int) -> Tagger:
    config = {**tiny_config(len(toy_vocabulary()), layers=layers), "hidden_size": width, "intermediate_size": 2 * width}
    model = Tagger(backbone_from_config(config), LabelVocab.from_types(TYPES, "bios"), dropout=0.0)
    model(artifacts.dummy_batch())
    return model


def build(strategy: tf.distribute.Strategy, initial: dict | None) -> tuple[Distiller, Tagger, Tagger]:
    with strategy.scope():
        keras.utils.set_random_seed(0)
        student, teacher = tagger(1, 32), tagger(2, 48)
        if initial is not None:
            student.set_weights(initial["student"])
            teacher.set_weights(initial["teacher"])
        distiller = Distiller(student, teacher, temperature=2.0, hard_weight=1.0, hidden_weight=1.0)
        if initial is not None:
            for projection, weights in zip(distiller.projections, initial["projections"]):
                projection.set_weights(weights)
    return distiller, student, teacher


def run(out: Path, name: str, strategy: tf.distribute.Strategy, raw: Path, initial: dict) -> None:
    distiller, student, teacher = build(strategy, initial)
    with strategy.scope():
        optimizer = FineTuningAdamW(WarmupLinearDecay(1e-3, 0, STEPS), weight_decay=0.01, clip_norm=0.1)
        optimizer.build(distiller.trainable_variables)
    tokenizer = CharTokenizer(toy_vocabulary())
    inputs = UnlabeledInputs([raw], tokenizer, batch_size=4, steps_per_epoch=STEPS, max_chars=20, seed=5)
    Trainer(distiller, optimizer, strategy, out / name, CONFIG, student, inputs).fit(
        toy_sentences(11, seed=7), None, tokenizer
    )
    scalars = read_scalars(out / name / "train")
    losses = [value for _, value in scalars["loss"]]
    terms = [[value for _, value in scalars[f"loss_terms/{term}"]] for term in ("soft", "hard", "hidden")]
    weights = {f"s{i}": w for i, w in enumerate(student.get_weights())}
    weights.update({f"t{i}": w for i, w in enumerate(teacher.get_weights())})
    np.savez(out / f"{name}.npz", losses=np.array(losses), terms=np.array(terms), **weights)


def main(out: str, names: list[str]) -> None:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    strategies = {"default": tf.distribute.get_strategy(), "mirrored": mirrored}
    raw = Path(out) / "raw.txt"
    raw.write_text("\n".join(s.text for s in toy_sentences(20, seed=9) if s.text) + "\n", encoding="utf-8")
    distiller, student, teacher = build(strategies["default"], None)
    initial = {
        "student": student.get_weights(),
        "teacher": teacher.get_weights(),
        "projections": [p.get_weights() for p in distiller.projections],
    }
    for name in names:
        run(Path(out), name, strategies[name], raw, initial)
    print(json.dumps({"done": names}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
