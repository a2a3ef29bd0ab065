import dataclasses
import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from report_pages import assert_scores_equal, parse
from tagger_dirs import TYPES, tiny_config, toy_vocabulary
from train_runs import REPO, child_env, read_scalars, run_train, start_train, toy_sentences, write_toy_files

from kner.checkpoint import backbone_from_config
from kner.data.corpus import Sentence, read_corpus
from kner.data.labels import LabelVocab
from kner.data.spans import Span
from kner.data.tokenizer import CharTokenizer
from kner.errors import InputError
from kner.metrics import evaluate
from kner.models import artifacts
from kner.models.tagger import Tagger
from kner.serving.predictor import Predictor
from kner.serving.text_tagger import TextTagger
from kner.training.optimization import FineTuningAdamW
from kner.training.trainer import (
    BEST_WEIGHTS,
    CHECKPOINTS,
    ERROR_REPORT,
    EVAL_REPORT,
    TrainConfig,
    Trainer,
    steps_per_epoch,
)

CHILD = REPO / "tests" / "strategy_child.py"
# Two child processes at once: the CRF and pair-head runs, and the softmax
# runs with the Keras-clipping pair.
STRATEGIES = ("default", "mirrored")
PAIR_HEADS = ("global_pointer", "efficient_global_pointer")
RUN_GROUPS = [
    [f"{strategy}-{head}-0.1-kner" for head in ("crf", *PAIR_HEADS) for strategy in STRATEGIES] + ["mirrored-overflow"],
    [f"{strategy}-softmax-0.1-{optimizer}" for optimizer in ("kner", "keras") for strategy in STRATEGIES],
]


def load_run(path: Path) -> tuple[np.ndarray, list[np.ndarray], float]:
    with np.load(path) as dump:
        weights = [dump[f"w{i}"] for i in range(len(dump.files) - 2)]
        return dump["losses"], weights, float(dump["replica_spread"])


def max_difference(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    assert [w.shape for w in a] == [w.shape for w in b]
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def strategy_runs(tmp_path_factory) -> Path:
    """Three steps (global batches of 4, 4 and 3 sentences, clip norm 0.1)
    under the default strategy and under MirroredStrategy on two CPUs."""
    out = tmp_path_factory.mktemp("strategies")
    children = []
    for index, runs in enumerate(RUN_GROUPS):
        with open(out / f"child{index}.log", "w") as log:
            command = [sys.executable, str(CHILD), str(out), *runs]
            children.append(subprocess.Popen(command, cwd=REPO, env=child_env(), stdout=log, stderr=subprocess.STDOUT))
    try:
        for index, child in enumerate(children):
            assert child.wait(timeout=400) == 0, (out / f"child{index}.log").read_text()[-3000:]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    return out


@pytest.mark.slow
@pytest.mark.parametrize("head", ["crf", "softmax", *PAIR_HEADS])
def test_mirrored_strategy_takes_the_same_steps_as_one_device(strategy_runs, head):
    losses, weights, _ = load_run(strategy_runs / f"default-{head}-0.1-kner.npz")
    mirrored_losses, mirrored_weights, spread = load_run(strategy_runs / f"mirrored-{head}-0.1-kner.npz")
    assert len(losses) == 3 and losses[-1] < losses[0]
    np.testing.assert_allclose(mirrored_losses, losses, rtol=1e-5)
    assert max_difference(mirrored_weights, weights) < 1e-6
    assert spread == 0.0  # the two replicas hold the same weights


@pytest.mark.slow
def test_keras_global_clipnorm_would_clip_before_the_cross_replica_sum(strategy_runs):
    # Evidence that the clip is active and that where it happens matters:
    # Keras' own clipping, applied to each replica's half of the gradient,
    # changes the training under MirroredStrategy.
    _, weights, _ = load_run(strategy_runs / "default-softmax-0.1-keras.npz")
    _, mirrored_weights, _ = load_run(strategy_runs / "mirrored-softmax-0.1-keras.npz")
    assert max_difference(mirrored_weights, weights) > 1e-4


@pytest.mark.slow
def test_replicas_skip_the_step_together_when_one_overflows(strategy_runs):
    with np.load(strategy_runs / "mirrored-overflow.npz") as result:
        # Keras: replica 0 saw finite gradients and applied the infinite sum.
        assert np.isnan(result["keras_weights"]).all() and (result["keras_scale"] == 2.0**15).all()
        # kner: both replicas skipped the step and halved the loss scale.
        assert (result["kner_weights"] == 1.0).all() and (result["kner_scale"] == 2.0**14).all()


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
@pytest.mark.parametrize("head", ["crf", "global_pointer"])
def test_multi_worker_mirrored_strategy_on_two_local_workers(strategy_runs, tmp_path, background, head):
    name = f"multi_worker-{head}-0.1-kner"
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    workers = []
    for index in range(2):
        env = {**child_env(), "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        with open(tmp_path / f"worker{index}.log", "w") as log:
            command = [sys.executable, str(CHILD), str(tmp_path), name]
            workers.append(subprocess.Popen(command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT))
        background(workers[-1])
    deadline = time.monotonic() + 240
    for index, worker in enumerate(workers):
        returncode = worker.wait(timeout=max(deadline - time.monotonic(), 1))
        assert returncode == 0, (tmp_path / f"worker{index}.log").read_text()[-3000:]
    chief_losses, chief, _ = load_run(tmp_path / f"{name}.0.npz")
    worker_losses, worker, _ = load_run(tmp_path / f"{name}.1.npz")
    assert max_difference(chief, worker) == 0.0
    # The two workers split each global batch: the same steps as one device.
    single_losses, single, _ = load_run(strategy_runs / f"default-{head}-0.1-kner.npz")
    np.testing.assert_allclose(chief_losses, single_losses, rtol=1e-5)
    assert max_difference(chief, single) < 1e-6
    model_dir = tmp_path / name
    for part in (BEST_WEIGHTS, EVAL_REPORT, f"{CHECKPOINTS}/ckpt-3.index", "train", "dev"):
        assert (model_dir / part).exists(), part
    assert [p.name for p in model_dir.iterdir() if p.name.startswith(f"{CHECKPOINTS}_")] == []


# ---- in-process: evaluation bookkeeping -------------------------------------


def tiny_trainer(
    model_dir: Path, config: TrainConfig, learning_rate: float = 1e-3, head: str = "crf"
) -> tuple[Trainer, CharTokenizer]:
    keras.utils.set_random_seed(0)
    vocabulary = toy_vocabulary()
    model = Tagger(backbone_from_config(tiny_config(len(vocabulary))), LabelVocab.from_types(TYPES, "bios"), head=head)
    model(artifacts.dummy_batch())
    optimizer = FineTuningAdamW(learning_rate)
    optimizer.build(model.trainable_variables)
    return Trainer(model, optimizer, tf.distribute.get_strategy(), model_dir, config), CharTokenizer(vocabulary)


def test_restart_evaluates_the_cut_off_epoch_then_stops_early(tmp_path):
    train, dev = toy_sentences(8, seed=1), toy_sentences(4, seed=2)
    config = TrainConfig(batch_size=4, epochs=1, checkpoint_every=0)
    per_epoch = steps_per_epoch(train, config)
    trainer, tokenizer = tiny_trainer(tmp_path, config, learning_rate=0.0)  # the dev F1 never changes
    assert trainer.fit(train, None, tokenizer) is None  # as if killed before the dev evaluation
    assert not (tmp_path / EVAL_REPORT).exists()
    trainer.config = dataclasses.replace(config, epochs=6, early_stopping_patience=2)
    report = trainer.fit(train, dev, tokenizer)
    # Epoch 1 is evaluated first, then epochs 2 and 3 bring no gain: stop.
    assert report["epoch"] == json.loads((tmp_path / EVAL_REPORT).read_text())["epoch"] == 1
    assert int(trainer.step.numpy()) == 3 * per_epoch
    assert [step for step, _ in read_scalars(tmp_path / "dev")["loss"]] == [per_epoch, 2 * per_epoch, 3 * per_epoch]
    assert trainer.is_finished(train, has_dev=True)  # stopped early: a rerun has nothing to do

    other, tokenizer = tiny_trainer(tmp_path, config, head="softmax")
    with pytest.raises(InputError, match="does not fit this model"):
        other.fit(train, dev, tokenizer)


def test_evaluation_windows_long_texts_like_the_exported_graph(tmp_path):
    """Dev texts longer than the window are tagged through the serving
    windows, not cut: the report equals scoring what the graph predicts."""
    config = TrainConfig(batch_size=4, epochs=1, max_seq_length=12)
    trainer, tokenizer = tiny_trainer(tmp_path, config)
    short = toy_sentences(6, seed=3)
    spans, text = [], ""
    for sentence in toy_sentences(8, seed=4):
        spans += [Span(s.start + len(text), s.end + len(text), s.type) for s in sentence.spans]
        text += sentence.text
    dev = [*short, Sentence(text, spans)]
    assert len(text) > 3 * config.max_seq_length
    report = trainer.evaluate(dev, tokenizer)
    predicted = Predictor(TextTagger(trainer.model, tokenizer, config.max_seq_length)).run([s.text for s in dev])
    expected = evaluate(
        [s.text for s in dev],
        [s.spans for s in dev],
        [[Span(e.start, e.end, e.type) for e in p.entities] for p in predicted],
        [p.tags for p in predicted],
        trainer.model.labels.scheme,
    )
    assert sum(t["support"] for t in report["per_type"].values()) == sum(len(s.spans) for s in dev)
    keys = ("micro", "per_type", "seqeval")
    assert {k: report[k] for k in keys} == {k: expected[k] for k in keys}
    # The loss covers the texts that fit in one window, and says how many.
    fitting = sum(len(s.text) <= config.max_seq_length - 2 for s in dev)
    assert 0 < report["loss_sentences"] == fitting < len(dev) and report["loss"] > 0
    long_only = trainer.evaluate(dev[-1:], tokenizer)
    assert (long_only["loss"], long_only["loss_sentences"]) == (None, 0)


def test_evaluation_tokenizes_each_dev_text_once(tmp_path, monkeypatch):
    """The dev set is tokenized once, for the loss batches and the unit
    offsets both, and not again at the next evaluation."""
    config = TrainConfig(batch_size=4, epochs=1, max_seq_length=12)
    trainer, tokenizer = tiny_trainer(tmp_path, config)
    dev = [*toy_sentences(6, seed=3), Sentence("".join(s.text for s in toy_sentences(4, seed=4)), [])]
    tokenized = []
    tokenize = tokenizer.tokenize

    def counting(texts):
        if tf.executing_eagerly():  # the Python side; the serving windows of the long text trace it
            tokenized.extend(texts.numpy().tolist())
        return tokenize(texts)

    monkeypatch.setattr(tokenizer, "tokenize", counting)
    first = trainer.evaluate(dev, tokenizer)
    assert sorted(tokenized) == sorted(s.text.encode() for s in dev)
    assert trainer.evaluate(dev, tokenizer) == first and len(tokenized) == len(dev)


def test_the_best_evaluation_writes_the_error_report(tmp_path):
    """model_dir/report.html shows the best evaluation: its scores, and the
    spans it scored, long texts' windows included."""
    config = TrainConfig(batch_size=4, epochs=1, max_seq_length=12, checkpoint_every=0)
    trainer, tokenizer = tiny_trainer(tmp_path, config, learning_rate=0.0)  # random tags: entities of every kind
    long = toy_sentences(6, seed=4)
    text = "".join(s.text for s in long)
    spans, offset = [], 0
    for sentence in long:
        spans += [Span(s.start + offset, s.end + offset, s.type) for s in sentence.spans]
        offset += len(sentence.text)
    dev = [*toy_sentences(5, seed=3), Sentence(text, spans)]
    report = trainer.fit(toy_sentences(16, seed=1), dev, tokenizer)
    page = (tmp_path / ERROR_REPORT).read_text(encoding="utf-8")
    assert_scores_equal(page, report)
    assert f"dev after epoch {report['epoch']} " in parse(page).find("h1").text()
    (data,) = parse(page).find_all("script", id="report-data")
    rows = {row[0]: row for row in json.loads(data.text())["rows"]}
    types = json.loads(data.text())["types"]
    assert sorted(rows) == list(range(len(dev)))
    predicted = [[Span(e[0], e[1], types[e[2]]) for e in rows[i][4]] for i in range(len(dev))]
    assert predicted == [sorted(set(p)) for p in trainer.last_predictions]
    scored = evaluate([s.text for s in dev], [s.spans for s in dev], predicted)
    assert scored["micro"] == report["micro"]
    assert sum(map(len, predicted)) > 0, "the model predicts no entity: the test shows nothing"


# ---- resuming after SIGKILL -------------------------------------------------


def latest_step(model_dir: Path) -> int:
    latest = tf.train.latest_checkpoint(str(model_dir / CHECKPOINTS))
    return int(latest.rsplit("-", 1)[1]) if latest else 0


def checkpoint_values(model_dir: Path) -> dict[str, np.ndarray]:
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(model_dir / CHECKPOINTS)))
    names = [n for n in reader.get_variable_to_shape_map() if not n.startswith(("_CHECKPOINTABLE", "save_counter"))]
    return {name: reader.get_tensor(name) for name in names}


@pytest.fixture
def background():
    """Registers background processes, killed at teardown if still running."""
    processes = []
    yield processes.append
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_resumes_after_sigkill_to_the_weights_of_an_uninterrupted_run(tmp_path, background):
    files = write_toy_files(tmp_path, train=24, dev=4, dropout=0.1)
    flags = dict(files, batch_size=2, epochs=2, checkpoint_every=2, log_every=1, learning_rate=1e-3, dropout=0.1)
    per_epoch = steps_per_epoch(read_corpus(files["train_file"]), TrainConfig(batch_size=2))
    total = 2 * per_epoch
    killed_dir, whole_dir = tmp_path / "killed", tmp_path / "whole"
    background(uninterrupted := start_train(tmp_path / "whole.log", **flags, model_dir=whole_dir))
    background(first := start_train(tmp_path / "killed.log", **flags, model_dir=killed_dir))
    deadline = time.monotonic() + 240
    while latest_step(killed_dir) == 0 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL, (tmp_path / "killed.log").read_text()[-3000:]
    resumed_at = latest_step(killed_dir)
    assert 0 < resumed_at < total and resumed_at % 2 == 0

    second = run_train(**flags, model_dir=killed_dir)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"resumed from {killed_dir / CHECKPOINTS}/ckpt-{resumed_at} at step {resumed_at}" in second.stderr
    epochs_run = re.findall(r"^epoch (\d)/2$", second.stdout, re.M)
    assert epochs_run == [str(e + 1) for e in range(resumed_at // per_epoch, 2)]  # only what was left
    assert latest_step(killed_dir) == total
    assert (killed_dir / BEST_WEIGHTS).exists() and (killed_dir / EVAL_REPORT).exists()
    assert read_scalars(killed_dir / "train")["loss"][-1][0] == total

    # Same batches, same dropout masks: the weights and optimizer state of an uninterrupted run.
    assert uninterrupted.wait(timeout=240) == 0, (tmp_path / "whole.log").read_text()[-3000:]
    resumed, whole = checkpoint_values(killed_dir), checkpoint_values(whole_dir)
    assert resumed.keys() == whole.keys() and any("random_state" in name for name in whole)
    for name in whole:
        np.testing.assert_allclose(resumed[name], whole[name], rtol=1e-6, atol=1e-7, err_msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_sigint_and_sigterm_stop_promptly_with_a_checkpoint_and_the_same_command_resumes(
    tmp_path, background, stop_signal
):
    files = write_toy_files(tmp_path, train=40, dev=4)
    # No periodic checkpoint: the one after the signal is the stop's own.
    flags = dict(files, batch_size=2, epochs=3, checkpoint_every=0, learning_rate=1e-3, model_dir=tmp_path / "run")
    per_epoch = steps_per_epoch(read_corpus(files["train_file"]), TrainConfig(batch_size=2))
    total = 3 * per_epoch
    log = tmp_path / "stopped.log"
    background(first := start_train(log, **flags))
    deadline = time.monotonic() + 240
    while "epoch 1/3" not in log.read_text() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(stop_signal)  # while the first step is being traced
    assert first.wait(timeout=240) == 128 + stop_signal, log.read_text()[-3000:]
    stopped_at = latest_step(tmp_path / "run")
    output = log.read_text()
    assert f"stopped by {stop_signal.name} at step {stopped_at}; checkpoint " in output
    # After the step under way, not at the end of the epoch (20 steps) or of training.
    assert 0 < stopped_at < per_epoch and "Traceback" not in output and "KeyboardInterrupt" not in output

    second = run_train(**flags)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"resumed from {tmp_path / 'run' / CHECKPOINTS}/ckpt-{stopped_at} at step {stopped_at}" in second.stderr
    assert latest_step(tmp_path / "run") == total
