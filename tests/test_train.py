"""`python -m kner.train` end to end on toy data (1-layer, 32-wide BERT)."""

import json
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from tagger_dirs import tiny_config
from train_runs import (
    REPO,
    child_env,
    read_scalars,
    run_child,
    run_train,
    start_train,
    toy_sentences,
    train_command,
    write_toy_files,
)

from kner.checkpoint import backbone_from_config, read_bert_config, save_google_checkpoint
from kner.data.corpus import Sentence, read_corpus, write_cluener, write_column
from kner.data.spans import Span
from kner.data.tokenizer import build_vocab, read_vocab, save_vocab
from kner.models.artifacts import load_tagger

pytestmark = pytest.mark.slow
ARTIFACTS = ("bert_config.json", "vocab.txt", "labels.json", "settings.json", "flags.cfg")
ARTIFACTS += ("best.weights.h5", "eval_report.json", "report.html", "checkpoints/checkpoint")


def write_google_checkpoint(directory, texts):
    """A random 1-layer BERT in Google's format, with a vocab of `texts`."""
    vocabulary = build_vocab(texts)
    save_vocab(vocabulary, directory.parent / "google_vocab.txt")
    keras.utils.set_random_seed(5)
    backbone = backbone_from_config(tiny_config(len(vocabulary)))
    save_google_checkpoint(backbone, directory, vocab_file=directory.parent / "google_vocab.txt")
    return directory


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two trainings at once: `crf` (CLUENER files, 6 epochs of 5 steps, every
    step logged) and `softmax` (a BIO column train file, a dev file with a
    type the train file lacks, a Google-format initial checkpoint)."""
    base = tmp_path_factory.mktemp("train")
    crf = dict(write_toy_files(base / "data", train=10, dev=6), batch_size=2, epochs=6)
    crf.update(log_every=1, checkpoint_every=10, learning_rate=1e-3, head_learning_rate=1e-2, model_dir=base / "crf")
    train = toy_sentences(10, seed=3)
    write_column(base / "train.bio", train, "bio")
    dev = [*toy_sentences(3, seed=4), Sentence("他在联合国工作", [Span(2, 4, "org")])]
    write_cluener(base / "dev_org.json", dev)
    google = write_google_checkpoint(base / "google", [s.text for s in train + dev])
    softmax = dict(train_file=base / "train.bio", dev_file=base / "dev_org.json", init_checkpoint=google)
    softmax["bert_config"] = crf["bert_config"]  # ignored, with a warning
    softmax.update(head="softmax", batch_size=2, epochs=1, max_seq_length=64, model_dir=base / "softmax")
    softmax.update(adversarial="fgm", adversarial_steps=2)  # steps: PGD's, ignored with a warning
    flag_sets = {"crf": crf, "softmax": softmax}
    processes = {name: start_train(base / f"{name}.log", **flags) for name, flags in flag_sets.items()}
    try:
        for name, process in processes.items():
            assert process.wait(timeout=300) == 0, (base / f"{name}.log").read_text()[-3000:]
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
    runs = {name: (base / name, (base / f"{name}.log").read_text()) for name in flag_sets}
    return runs | {"google": google, "flags": flag_sets}


def test_model_dir_holds_everything_export_and_predict_need(runs):
    model_dir, log = runs["crf"]
    for name in ARTIFACTS:
        assert (model_dir / name).exists(), name
    saved = (model_dir / "flags.cfg").read_text()
    assert f"--train_file={runs['flags']['crf']['train_file']}\n" in saved  # absolute paths
    assert f"--model_dir={model_dir}\n--seed=42\n" in saved and "--head=crf\n" in saved
    assert "test_random_seed" not in saved and "--verbosity" not in saved  # kner's flags only
    assert json.loads((model_dir / "settings.json").read_text())["head"] == "crf"
    assert json.loads((model_dir / "eval_report.json").read_text())["epoch"] in range(1, 7)
    assert "best dev micro F1" in log
    assert "new model from " in log and "randomly initialised; vocab built from the training text" in log
    assert f"best weights  {model_dir / 'best.weights.h5'}  (epoch " in log
    assert f"dev report    {model_dir / 'eval_report.json'}\n" in log
    assert f"error report  {model_dir / 'report.html'}  (the best dev evaluation; open it in a browser)" in log
    assert re.search(r"^strategy default with 1 replicas$", log, re.M)  # kner's INFO lines stay, as plain lines
    assert "Sharding callback duration" not in log  # TensorFlow's go
    assert not re.search(r"^[IWEF]\d{4} ", log, re.M), "an absl- or TensorFlow-formatted log line"
    # One line per epoch; the best epoch's table once, at the end.
    dev_line = r"^dev after epoch \d: loss \d+\.\d{4}, micro P [\d.]+ R [\d.]+ F1 [\d.]+ \((best so far|best [\d.]+)\)$"
    assert len(re.findall(dev_line, log, re.M)) == 6, log
    assert log.count("macro F1 over types") == 1
    assert log.index("dev scores of the best epoch") < log.index("macro F1 over types") < log.index("best dev micro")


def test_tensorboard_summaries(runs):
    model_dir, _ = runs["crf"]
    train, dev = read_scalars(model_dir / "train"), read_scalars(model_dir / "dev")
    assert [step for step, _ in train["loss"]] == list(range(1, 31))
    assert all(value > 0 for _, value in train["examples_per_second"])
    # The rate used by each step: 3 warmup steps from 0, then linear decay.
    rates = dict(train["learning_rate"])
    assert (rates[1], rates[4], rates[30]) == pytest.approx((0.0, 1e-3, 1e-3 / 27), rel=1e-5)
    assert [step for step, _ in dev["loss"]] == [5, 10, 15, 20, 25, 30]
    assert {"overall/f1", "overall/precision", "overall/recall", "loc/f1", "name/f1"} <= dev.keys()


def test_loss_falls_when_overfitting_ten_sentences(runs):
    model_dir, log = runs["crf"]
    losses = [value for _, value in read_scalars(model_dir / "train")["loss"]]
    first_epoch, last_epoch = np.mean(losses[:5]), np.mean(losses[-5:])
    assert last_epoch < first_epoch / 2, losses
    # The progress line of each epoch shows the epoch's mean loss.
    shown = [float(value) for value in re.findall(r"^5/5 - .* - loss: ([\d.]+)", log, re.M)]
    assert shown == pytest.approx([np.mean(losses[i : i + 5]) for i in range(0, 30, 5)], abs=1e-4)


def test_column_train_file_softmax_head_and_google_checkpoint(runs):
    model_dir, log = runs["softmax"]
    google = runs["google"]
    assert f"loaded bert checkpoint {google / 'bert_model.ckpt'}: BertBackbone with 1 layers, hidden 32" in log
    assert "variables, 0 ignored" in log
    assert "warning: --bert_config is ignored: the backbone's shape and vocab come from --init_checkpoint" in log
    assert "adversarial   FGM on the word embeddings, epsilon 1 (2 forward-backward passes a step)" in log
    assert "warning: --adversarial_steps is ignored: --adversarial is fgm, not pgd" in log
    settings = json.loads((model_dir / "settings.json").read_text())
    assert (settings["head"], settings["decode"]) == ("softmax", "viterbi")
    labels = json.loads((model_dir / "labels.json").read_text())
    assert {"B-org", "S-loc", "I-name"} <= set(labels["tags"])  # dev-only types are known too
    assert read_vocab(model_dir / "vocab.txt") == read_vocab(google / "vocab.txt")
    assert read_bert_config(model_dir / "bert_config.json") == read_bert_config(google / "bert_config.json")
    # 5 Adam steps at a rate of at most 3e-5 move a weight by well under 1e-3;
    # a random initialisation would be 0.02 away.
    model, _, _ = load_tagger(model_dir)
    trained = model.backbone.token_embedding.embeddings.numpy()
    loaded = tf.train.load_checkpoint(str(google / "bert_model.ckpt")).get_tensor("bert/embeddings/word_embeddings")
    assert 0 < np.max(np.abs(trained - loaded)) < 1e-3


def test_rerunning_a_finished_training_changes_nothing_and_exports_once(runs, tmp_path):
    model_dir, _ = runs["crf"]
    before = {p: p.stat().st_mtime_ns for p in model_dir.rglob("*") if p.is_file()}
    flags = {**runs["flags"]["crf"], "export_dir": tmp_path / "export"}
    first = run_train(**flags)
    assert first.returncode == 0, first.stderr[-3000:]
    assert f"training in {model_dir} is finished (step 30); nothing to train" in first.stdout
    assert "epoch 1/6" not in first.stdout and "dev after epoch" not in first.stdout
    assert f"export        {tmp_path / 'export' / '1'}  (TF Serving SavedModel)" in first.stdout  # what was missing
    # The saved flagfile repeats the run from another directory.
    command = train_command(flagfile=model_dir / "flags.cfg", export_dir=tmp_path / "export")
    second = subprocess.run(command, cwd=tmp_path, env=child_env(), capture_output=True, text=True, timeout=240)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"training in {model_dir} is finished (step 30); nothing to train" in second.stdout
    assert "exported earlier from these weights; nothing written" in second.stdout
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == ["1"]
    assert {p: p.stat().st_mtime_ns for p in model_dir.rglob("*") if p.is_file()} == before


def test_missing_init_checkpoint_is_one_error_line(tmp_path):
    flags = write_toy_files(tmp_path)
    del flags["bert_config"]
    result = run_train(**flags, model_dir=tmp_path / "run", init_checkpoint=tmp_path / "chinese_L-12_H-768_A-12")
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr
    assert all(name in errors[0] for name in ("bert_config.json", "bert_model.ckpt.index", "vocab.txt"))
    assert not (tmp_path / "run").exists()


def test_unlabelled_dev_file_is_an_error(tmp_path):
    flags = {**write_toy_files(tmp_path), "dev_file": tmp_path / "test.json"}
    (tmp_path / "test.json").write_text('{"id": 0, "text": "张三在北京"}\n', encoding="utf-8")
    result = run_train(**flags, model_dir=tmp_path / "run")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"error: {tmp_path / 'test.json'}:1: no label" in result.stderr


def test_help_lists_the_flags():
    result = subprocess.run(
        [sys.executable, "-m", "kner.train", "--help"], cwd=REPO, env=child_env(), capture_output=True, text=True
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert result.stdout.startswith("Fine-tunes")
    assert all(f"--{flag}" in result.stdout for flag in ("train_file", "init_checkpoint", "head", "strategy"))


def test_training_process_builds_bert_without_tensorflow_text():
    """`kner.train` keeps keras-hub from loading tensorflow-text (118 MiB of
    RSS kner never uses); keras-hub's BERT still builds and runs."""
    script = (
        "import sys, kner.train\n"
        "from kner.checkpoint import backbone_from_config\n"
        "from kner.models.artifacts import dummy_batch\n"
        "from tagger_dirs import tiny_config\n"
        "output = backbone_from_config(tiny_config(30))(dummy_batch())['sequence_output']\n"
        "print(sys.modules['tensorflow_text'], 'keras_hub' in sys.modules, output.shape)\n"
    )
    result = run_child(sys.executable, "-c", script)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split("\n")[-2] == "None True (1, 8, 32)"


def test_a_decoding_the_head_lacks_and_crossing_spans_for_a_tagging_head_are_one_line(tmp_path):
    flags = write_toy_files(tmp_path)
    wrong = run_train(**flags, model_dir=tmp_path / "run", head="crf", decode="nested")
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr
    assert "error: --head=crf: --decode=nested does not apply to the crf head (it takes viterbi)" in wrong.stderr
    crossing = Sentence("右肺门增大", [Span(0, 2, "bod"), Span(1, 4, "sym")])
    write_cluener(tmp_path / "crossing.json", [crossing, *read_corpus(flags["train_file"])])
    flags["train_file"] = str(tmp_path / "crossing.json")
    refused = run_train(**flags, model_dir=tmp_path / "run")
    assert refused.returncode == 2 and not (tmp_path / "run").exists()
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: {tmp_path / 'crossing.json'}:1: spans [0, 2] bod '右肺门' and [1, 4] sym '肺门增大' cross: "
        "the crf head takes flat entities only; the global_pointer and efficient_global_pointer heads take "
        "them (--head), --lenient drops the later span"
    ]
