"""Pretrains a tiny BERT (masked LM + NSP) for a few steps under each
STRATEGY and saves its per-step losses (from the TensorBoard summaries) and
final weights: the child process of `tests/training/test_pretrainer.py`,
which needs a fresh process to set up two logical CPUs.

    python tests/pretrain_child.py OUT STRATEGY [STRATEGY ...]

STRATEGY is `default` or `mirrored` (two logical CPUs). Each run writes
OUT/STRATEGY.npz with `losses` and the weights `w0`, `w1`, ...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tagger_dirs import tiny_config
from train_runs import read_scalars

from kner.checkpoint import backbone_from_config
from kner.data.masking import Masker
from kner.data.pretraining_data import ExampleConfig, prepare_examples
from kner.data.tokenizer import MASK, CharTokenizer, build_vocab
from kner.models.masked_lm import MaskedLMModel, dummy_features
from kner.training.optimization import FineTuningAdamW, WarmupLinearDecay
from kner.training.pretrainer import PretrainConfig, Pretrainer

STEPS = 4
TEXT = [
    "清晨的江边总是很安静。几位老人在柳树下打太极拳。卖豆浆的小车慢慢推过石板路。",
    "我们学校的图书馆去年重新装修了。三楼新开了一间自习室。窗外就是操场。",
    "这家面馆开了二十多年。老板每天凌晨四点起来熬汤。牛肉面的汤底清澈。",
    "今年春天雨水多。山上的茶树发芽比往年早了一个星期。茶农们天不亮就上山采茶。",
] * 4


def run(out: Path, name: str, strategy: tf.distribute.Strategy) -> None:
    corpus = out / "corpus.txt"
    corpus.write_text("\n\n".join("\n".join(t.split("。")) for t in TEXT) + "\n", encoding="utf-8")
    vocabulary = build_vocab(TEXT)
    (out / "vocab.txt").write_text("".join(t + "\n" for t in vocabulary), encoding="utf-8")
    tokenizer = CharTokenizer(vocabulary)
    data = prepare_examples([("google", corpus)], tokenizer, ExampleConfig(32, nsp=True), out / name, "train")
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = MaskedLMModel(backbone_from_config(tiny_config(len(vocabulary))), next_sentence=True)
        model(dummy_features())
        optimizer = FineTuningAdamW(WarmupLinearDecay(1e-3, 1, STEPS), clip_norm=0.5)
        optimizer.build(model.trainable_variables)
    masker = Masker(len(vocabulary), vocabulary.index(MASK), max_seq_length=32, max_predictions_per_seq=5)
    config = PretrainConfig(batch_size=8, train_steps=STEPS, seed=3, checkpoint_every=0, log_every=1, eval_every=0)
    Pretrainer(model, optimizer, strategy, out / name, config, masker, out / "vocab.txt").pretrain(data.path, None)
    losses = [value for _, value in read_scalars(out / name / "train")["loss"]]
    weights = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    np.savez(out / f"{name}.npz", losses=np.array(losses), **weights)


def main(out: str, names: list[str]) -> None:
    strategies = {"default": tf.distribute.get_strategy()}
    if "mirrored" in names:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        strategies["mirrored"] = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    for name in names:
        run(Path(out), name, strategies[name])
    print(json.dumps({"done": names}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
