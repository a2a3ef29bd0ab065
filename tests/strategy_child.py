"""Trains a tiny tagger for one epoch (3 steps of 4, 4 and 3 sentences) under
each RUN and saves its per-step training losses (read back from the
TensorBoard summaries) and final weights: the child process of
`tests/test_trainer.py`, which needs fresh processes to set up devices.

    python tests/strategy_child.py OUT RUN [RUN ...]

RUN is `strategy-head-clip_norm-optimizer[-adversarial]`: strategy
`default`, `mirrored` (two logical CPUs) or `multi_worker` (cluster from
`TF_CONFIG`); optimizer `kner` (`FineTuningAdamW`: clips after the
cross-replica sum) or `keras` (Keras `AdamW(global_clipnorm=...)`: clips
each replica's gradient before it); adversarial `fgm` or `pgd` (default
settings; none without). Each run trains in OUT/RUN (shared by the workers of a cluster) and
writes OUT/RUN.npz (OUT/RUN.TASK.npz for worker TASK) holding `losses`,
`replica_spread` (the largest difference between the copies of a variable
on the replicas of this process) and the weights `w0`, `w1`, ...
RUN `mirrored-overflow` is the loss-scale experiment of `overflow`.
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
from kner.models import artifacts
from kner.models.tagger import Tagger
from kner.training import distribute
from kner.training.adversarial import build_adversary
from kner.training.optimization import (
    NO_DECAY_NAMES,
    CrossReplicaLossScaleOptimizer,
    FineTuningAdamW,
    WarmupLinearDecay,
)
from kner.training.trainer import TrainConfig, Trainer

CONFIG = TrainConfig(batch_size=4, eval_batch_size=8, epochs=1, checkpoint_every=0, log_every=1, seed=3)
STEPS = 3
PEAK, HEAD_FACTOR, WEIGHT_DECAY = 1e-3, 10.0, 0.01


def make_optimizer(kind: str, model: Tagger, clip_norm: float) -> keras.optimizers.Optimizer:
    schedule = WarmupLinearDecay(PEAK, 0, STEPS)
    if kind == "kner":
        head = [v for layer in model.head_layers() for v in layer.trainable_variables]
        return FineTuningAdamW(
            schedule, weight_decay=WEIGHT_DECAY, clip_norm=clip_norm, lr_multipliers={id(v): HEAD_FACTOR for v in head}
        )
    optimizer = keras.optimizers.AdamW(schedule, weight_decay=WEIGHT_DECAY, epsilon=1e-6, global_clipnorm=clip_norm)
    optimizer.exclude_from_weight_decay(var_names=list(NO_DECAY_NAMES))
    return optimizer


def build(strategy: tf.distribute.Strategy, head: str, kind: str, clip_norm: float, initial: list | None):
    vocabulary = toy_vocabulary()
    labels = LabelVocab.from_types(TYPES, "bios")
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = Tagger(backbone_from_config(tiny_config(len(vocabulary))), labels, head=head, dropout=0.0)
        model(artifacts.dummy_batch())
        if initial is not None:
            model.set_weights(initial)
        optimizer = make_optimizer(kind, model, clip_norm)
        optimizer.build(model.trainable_variables)
    return model, optimizer, CharTokenizer(vocabulary)


def replica_spread(strategy: tf.distribute.Strategy, model: Tagger) -> float:
    spread = 0.0
    for variable in model.weights:
        copies = [np.asarray(c) for c in strategy.experimental_local_results(variable.value)]
        spread = max([spread] + [float(np.max(np.abs(c - copies[0]))) for c in copies[1:]])
    return spread


def run(out: Path, name: str, strategy: tf.distribute.Strategy, initial: dict) -> None:
    _, head, clip_norm, kind, *adversarial = name.split("-")
    if head not in initial:  # the same starting weights for every strategy
        initial[head] = build(tf.distribute.get_strategy(), head, "kner", 0.0, None)[0].get_weights()
    model, optimizer, tokenizer = build(strategy, head, kind, float(clip_norm), initial[head])
    data = toy_sentences(11, seed=7)
    task_type, task_id = distribute.worker_id(strategy)
    dev = data[:4] if task_type else None  # a cluster run also writes best weights and a report
    adversary = build_adversary(adversarial[0], model) if adversarial else None
    Trainer(model, optimizer, strategy, out / name, CONFIG, adversary=adversary).fit(data, dev, tokenizer)
    losses = [value for _, value in read_scalars(out / name / "train")["loss"]]
    dump = out / (f"{name}.{task_id}.npz" if task_type else f"{name}.npz")
    weights = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    np.savez(dump, losses=np.array(losses), replica_spread=replica_spread(strategy, model), **weights)


def overflow(out: Path, strategy: tf.distribute.Strategy) -> None:
    """One step in which only replica 1's gradient overflows, with Keras'
    and kner's loss-scale optimizers: OUT/mirrored-overflow.npz holds each
    one's weights and loss scale on every replica."""
    results = {}
    for name, wrapper in (("keras", keras.optimizers.LossScaleOptimizer), ("kner", CrossReplicaLossScaleOptimizer)):
        with strategy.scope():
            variable = keras.Variable(np.ones(2, np.float32), name="kernel")
            optimizer = wrapper(FineTuningAdamW(0.1, clip_norm=0.0))
            optimizer.build([variable])

        def replica_step(optimizer=optimizer, variable=variable):
            replica = tf.distribute.get_replica_context().replica_id_in_sync_group
            optimizer.apply([tf.where(replica == 1, np.inf, 1.0) * tf.ones(2)], [variable])

        tf.function(lambda step=replica_step: strategy.run(step))()
        results[f"{name}_weights"] = np.stack(strategy.experimental_local_results(variable.value))
        results[f"{name}_scale"] = np.stack(strategy.experimental_local_results(optimizer.dynamic_scale.value))
    np.savez(out / "mirrored-overflow.npz", **results)


def main(out: str, names: list[str]) -> None:
    strategies = {}
    if any(name.startswith("multi_worker") for name in names):
        strategies["multi_worker"] = distribute.make_strategy("multi_worker")  # before any other TF op
    strategies["default"] = tf.distribute.get_strategy()
    if any(name.startswith("mirrored") for name in names):
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        strategies["mirrored"] = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    initial: dict = {}
    for name in names:
        strategy = strategies[name.split("-")[0]]
        if name == "mirrored-overflow":
            overflow(Path(out), strategy)
        else:
            run(Path(out), name, strategy, initial)
    print(json.dumps({"done": names}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
