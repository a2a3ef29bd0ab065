"""Pretrains a tiny model for a few steps under each STRATEGY and saves
its per-step losses (from the TensorBoard summaries) and final weights: the
child process of `tests/training/test_pretrainer.py`, which needs a fresh
process to set up two logical CPUs.

    python tests/pretrain_child.py OUT MODEL_TYPE STRATEGY [STRATEGY ...]

MODEL_TYPE is `bert` (masked LM + NSP, AdamW), `albert` (Google-layout
ALBERT with two layers sharing one block, n-gram masking + SOP, LAMB),
`electra` (generator and discriminator, ELECTRA's masking, sampling, AdamW)
or `distillation` (a 1-layer/16 student taught by a frozen 2-layer/32
teacher: KL x T**2 over every token, masked LM, cosine through a linear
projection);
STRATEGY is `default` or `mirrored` (two logical CPUs). Each run writes
OUT/MODEL_TYPE-STRATEGY.npz with `losses` and the weights `w0`, `w1`, ...
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
from kner.models.pretraining import MODEL_TYPES, DistillationOptions, MaskedLMModel, PretrainOptions, dummy_features
from kner.training.optimization import FineTuningAdamW, Lamb, WarmupLinearDecay
from kner.training.pretrainer import PretrainConfig, Pretrainer

STEPS = 4
TEXT = [
    "清晨的江边总是很安静。几位老人在柳树下打太极拳。卖豆浆的小车慢慢推过石板路。",
    "我们学校的图书馆去年重新装修了。三楼新开了一间自习室。窗外就是操场。",
    "这家面馆开了二十多年。老板每天凌晨四点起来熬汤。牛肉面的汤底清澈。",
    "今年春天雨水多。山上的茶树发芽比往年早了一个星期。茶农们天不亮就上山采茶。",
] * 4


# Per model type: the config, the sentence task, the n-gram length and the optimizer.
RECIPES = {
    "bert": (lambda vocab: tiny_config(vocab), "nsp", 1, FineTuningAdamW),
    "albert": (
        lambda vocab: {**tiny_config(vocab, layers=2), "embedding_size": 16, "hidden_act": "relu"},
        "sop",
        3,
        Lamb,
    ),
    "electra": (
        lambda vocab: {**tiny_config(vocab, layers=2), "embedding_size": 16, "model_type": "electra"},
        None,
        1,
        FineTuningAdamW,
    ),
    "distillation": (lambda vocab: {**tiny_config(vocab), "hidden_size": 16}, None, 1, FineTuningAdamW),
}


def distillation_options(vocab_size: int) -> DistillationOptions:
    """A random 2-layer/32 teacher (built in the strategy's scope), every loss term on."""
    teacher = MaskedLMModel(backbone_from_config(tiny_config(vocab_size, layers=2)))
    teacher(dummy_features())
    rng = np.random.default_rng(7)
    for variable in teacher.weights:
        variable.assign(rng.normal(0, 0.3, variable.shape).astype("float32"))
    return DistillationOptions(teacher, hidden_projection="linear", soft_loss_positions="all")


def run(out: Path, model_type: str, name: str, strategy: tf.distribute.Strategy) -> None:
    config, task, ngram, optimizer_class = RECIPES[model_type]
    corpus = out / "corpus.txt"
    corpus.write_text("\n\n".join("\n".join(t.split("。")) for t in TEXT) + "\n", encoding="utf-8")
    vocabulary = build_vocab(TEXT)
    (out / "vocab.txt").write_text("".join(t + "\n" for t in vocabulary), encoding="utf-8")
    tokenizer = CharTokenizer(vocabulary)
    run_dir = out / f"{model_type}-{name}"
    data = prepare_examples([("google", corpus)], tokenizer, ExampleConfig(32, sentence_task=task), run_dir, "train")
    with strategy.scope():
        keras.utils.set_random_seed(0)
        options = PretrainOptions(sentence_task=task)
        if model_type == "distillation":
            options = PretrainOptions(distillation=distillation_options(len(vocabulary)))
        model = MODEL_TYPES[model_type].create(backbone_from_config(config(len(vocabulary))), options)
        model(dummy_features())
        optimizer = optimizer_class(WarmupLinearDecay(1e-3, 1, STEPS), clip_norm=0.5)
        optimizer.build(model.trainable_variables)
    masking = MODEL_TYPES[model_type].masking
    masker = Masker(
        len(vocabulary), vocabulary.index(MASK), max_seq_length=32, max_predictions_per_seq=5, ngram=ngram, **masking
    )
    config = PretrainConfig(batch_size=8, train_steps=STEPS, seed=3, checkpoint_every=0, log_every=1, eval_every=0)
    Pretrainer(model, optimizer, strategy, run_dir, config, masker, out / "vocab.txt").pretrain(data.path, None)
    losses = [value for _, value in read_scalars(run_dir / "train")["loss"]]
    weights = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    np.savez(out / f"{model_type}-{name}.npz", losses=np.array(losses), **weights)


def main(out: str, model_type: str, names: list[str]) -> None:
    strategies = {"default": tf.distribute.get_strategy()}
    if "mirrored" in names:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        strategies["mirrored"] = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    for name in names:
        run(Path(out), model_type, name, strategies[name])
    print(json.dumps({"done": names}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
