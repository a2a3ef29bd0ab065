"""Helpers for tests that run `python -m kner.train`: toy data files, a tiny
BERT config, the command line, and reading TensorBoard scalars back."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import tensorflow as tf
from tagger_dirs import tiny_config, toy_sentence
from tensorflow.core.util import event_pb2

from kner.data.corpus import Sentence, write_cluener

REPO = Path(__file__).resolve().parents[1]


def toy_sentences(count: int, seed: int) -> list[Sentence]:
    """`count` non-empty toy sentences with names and places."""
    rng, sentences = random.Random(seed), []
    while len(sentences) < count:
        sentence = toy_sentence(rng)
        if sentence.text:
            sentences.append(sentence)
    return sentences


def write_toy_files(directory: Path, train: int = 20, dev: int = 6, dropout: float = 0.0) -> dict[str, str]:
    """CLUENER train/dev files and a 1-layer, 32-wide bert_config.json in
    `directory`; returns the matching `kner.train` flags."""
    directory.mkdir(parents=True, exist_ok=True)
    write_cluener(directory / "train.json", toy_sentences(train, seed=1))
    write_cluener(directory / "dev.json", toy_sentences(dev, seed=2))
    config = {**tiny_config(100), "hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout}
    (directory / "bert_config.json").write_text(json.dumps(config))
    return {
        "train_file": str(directory / "train.json"),
        "dev_file": str(directory / "dev.json"),
        "bert_config": str(directory / "bert_config.json"),
        "max_seq_length": 64,  # the config's max_position_embeddings
    }


def train_command(**flags) -> list[str]:
    """`python -m kner.train --name=value ...`."""
    return [sys.executable, "-m", "kner.train", *(f"--{name}={value}" for name, value in flags.items())]


def child_env() -> dict[str, str]:
    """The environment for a child process that imports kner and the test helpers."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}


def run_child(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """Runs a command from the repository root with TensorFlow's C++ logging
    off; text output captured."""
    env = {**child_env(), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=REPO, timeout=300, **kwargs)


def run_train(timeout: float = 240, **flags) -> subprocess.CompletedProcess:
    return subprocess.run(
        train_command(**flags), cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=timeout
    )


def start_train(log: Path, **flags) -> subprocess.Popen:
    """Starts `python -m kner.train` in the background, stdout and stderr to `log`."""
    with open(log, "w") as out:
        return subprocess.Popen(train_command(**flags), cwd=REPO, env=child_env(), stdout=out, stderr=subprocess.STDOUT)


def read_scalars(event_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """`{tag: [(step, value), ...]}` of the scalar summaries under `event_dir`."""
    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(Path(event_dir).glob("events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(str(path)):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                number = float(tf.make_ndarray(value.tensor)) if value.HasField("tensor") else value.simple_value
                scalars.setdefault(value.tag, []).append((event.step, number))
    return {tag: sorted(values) for tag, values in scalars.items()}
