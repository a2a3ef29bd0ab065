"""`python -m kner.pretrain` end to end: the BERT, ALBERT, ELECTRA and
general-distillation demo flagfiles pretrain, their output is a
Google-format checkpoint that `kner.train --init_checkpoint` fine-tunes from
and that `kner.pretrain --init_checkpoint` continues (heads included), also
when pretrained under `mixed_bfloat16`; a killed run resumes; bad input is
one line and exit status 2. General distillation: the student with its
masked-LM head, each loss term logged, fine-tuned by `kner.train` and
task-distilled by `kner.distill`; widths that differ are one line."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from train_runs import REPO, child_env, read_scalars, run_child

from kner.backbones import bert_heads, electra_heads
from kner.backbones.tf1_checkpoint import read_variables

BERT_DEMO = (sys.executable, "-m", "kner.pretrain", "--flagfile=flags/pretrain_demo.cfg")
ALBERT_DEMO = (sys.executable, "-m", "kner.pretrain", "--flagfile=flags/pretrain_albert_demo.cfg")
ELECTRA_DEMO = (sys.executable, "-m", "kner.pretrain", "--flagfile=flags/pretrain_electra_demo.cfg")
GENERAL_DEMO = (sys.executable, "-m", "kner.pretrain", "--flagfile=flags/distill_general_demo.cfg")


def pretrain(*flags: str):
    return run_child(*BERT_DEMO, *flags)


def pretrain_albert(*flags: str):
    return run_child(*ALBERT_DEMO, *flags)


def demo_run(tmp_path_factory, command: tuple[str, ...], name: str) -> tuple[Path, str]:
    """The model_dir of a demo flagfile's run, and what it printed."""
    model_dir = tmp_path_factory.mktemp("pretrain") / name
    result = run_child(*command, f"--model_dir={model_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    return model_dir, result.stdout


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    model_dir, printed = demo_run(tmp_path_factory, BERT_DEMO, "demo")
    assert "wrote the Google-format checkpoint" in printed
    return model_dir


@pytest.mark.slow
def test_demo_writes_a_google_checkpoint_with_its_head_and_a_report(demo_dir):
    for name in ("bert_config.json", "vocab.txt", "bert_model.ckpt.index", "best/bert_model.ckpt.index"):
        assert (demo_dir / name).exists(), name
    variables = read_variables(demo_dir / "bert_model.ckpt")
    assert bert_heads.heads_in(variables) == ["masked_lm"]
    assert "bert/encoder/layer_1/output/LayerNorm/gamma" in variables
    report = json.loads((demo_dir / "eval_report.json").read_text())
    assert report["step"] == 40 and [r["step"] for r in report["history"]] == [20, 40]
    assert 0 <= report["masked_lm_accuracy"] <= 1 and report["masked_lm_loss"] > 0
    losses = [value for _, value in read_scalars(demo_dir / "train")["loss"]]
    assert losses[-1] < losses[0]  # it learns
    assert {tag for tag in read_scalars(demo_dir / "dev")} >= {"masked_lm_accuracy", "masked_lm_loss"}


def fine_tune_from(checkpoint_dir: Path, model_dir: Path) -> Path:
    """Runs one epoch of `kner.train` on the demo from `checkpoint_dir`;
    asserts it succeeded and evaluated; returns `model_dir`."""
    result = run_child(
        sys.executable, "-m", "kner.train", "--flagfile=flags/demo.cfg", f"--init_checkpoint={checkpoint_dir}",
        f"--model_dir={model_dir}", "--epochs=1", "--export_dir=",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((model_dir / "eval_report.json").read_text())["epoch"] == 1
    return model_dir


@pytest.mark.slow
def test_kner_train_fine_tunes_from_the_pretrained_checkpoint(demo_dir, tmp_path):
    model_dir = fine_tune_from(demo_dir, tmp_path / "ner")
    assert (model_dir / "vocab.txt").read_text() == (demo_dir / "vocab.txt").read_text()


@pytest.mark.slow
def test_mixed_bfloat16_learns_and_writes_a_float32_checkpoint_kner_train_fine_tunes_from(tmp_path):
    model_dir = tmp_path / "bf16"
    result = pretrain(f"--model_dir={model_dir}", "--mixed_precision=mixed_bfloat16")
    assert result.returncode == 0, result.stderr[-3000:]
    losses = [value for _, value in read_scalars(model_dir / "train")["loss"]]
    assert losses[-1] < losses[0]
    variables = read_variables(model_dir / "bert_model.ckpt")
    assert bert_heads.heads_in(variables) == ["masked_lm"]
    assert {dtype for _, dtype in variables.values()} == {"float32"}
    fine_tune_from(model_dir, tmp_path / "ner")


@pytest.mark.slow
def test_continued_pretraining_loads_the_head_and_starts_nsp_fresh(demo_dir, tmp_path):
    model_dir = tmp_path / "continued"
    result = pretrain(
        f"--init_checkpoint={demo_dir}", f"--model_dir={model_dir}", "--nsp", "--train_steps=2", "--eval_every=0",
        "--corpus_layout=line", "--bert_config=",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "loaded the masked LM (cls/predictions) head" in result.stderr
    assert "sentence-order prediction (cls/seq_relationship) head starts fresh" in result.stderr
    variables = read_variables(model_dir / "bert_model.ckpt")
    assert bert_heads.heads_in(variables) == ["masked_lm", "seq_relationship"]
    assert variables["cls/seq_relationship/output_weights"][0] == (2, 128)


@pytest.mark.slow
def test_bad_corpus_is_one_line_with_file_and_line(tmp_path):
    corpus = tmp_path / "bad.txt"
    corpus.write_bytes("第一行。\n".encode() + b"\xff\xfe\n")
    result = pretrain(f"--corpus_files={corpus}", f"--model_dir={tmp_path / 'out'}", "--dev_fraction=0")
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {corpus}:2: not valid UTF-8 at column 1 (byte 0xff)") and "--lenient" in last
    repaired = pretrain(
        f"--corpus_files={corpus}", f"--model_dir={tmp_path / 'repaired'}", "--dev_fraction=0", "--lenient"
    )
    assert "not valid UTF-8" not in repaired.stderr


@pytest.mark.slow
def test_nsp_refuses_one_document_and_warns_about_one_sentence_documents(tmp_path):
    sentences = [line.strip() for line in (REPO / "data/pretrain_demo/corpus.txt").read_text().splitlines()][:8]
    one_document = tmp_path / "one.txt"
    one_document.write_text("\n".join(sentences) + "\n", encoding="utf-8")
    common = ("--corpus_layout=google", "--nsp", "--dev_fraction=0", "--train_steps=1", "--eval_every=0")
    result = pretrain(f"--corpus_files={one_document}", f"--model_dir={tmp_path / 'one'}", *common)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {one_document}: 1 document in the train text") and "--nonsp" in last
    assert not (tmp_path / "one" / "bert_model.ckpt.index").exists()
    blank_lines = tmp_path / "blank.txt"
    blank_lines.write_text("\n\n".join(sentences) + "\n", encoding="utf-8")
    result = pretrain(f"--corpus_files={blank_lines}", f"--model_dir={tmp_path / 'blank'}", *common)
    assert result.returncode == 0, result.stderr[-3000:]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: training NSP")]
    assert len(warnings) == 1 and "one sentence per document" in warnings[0]
    assert "(8 documents; NSP " in result.stdout and "% random)" in result.stdout


@pytest.mark.slow
def test_sigint_stops_with_a_checkpoint_and_the_rerun_resumes(tmp_path):
    model_dir = tmp_path / "stopped"
    command = [sys.executable, "-m", "kner.pretrain", "--flagfile=flags/pretrain_demo.cfg", f"--model_dir={model_dir}"]
    log = tmp_path / "log.txt"
    with open(log, "w") as out:
        child = subprocess.Popen(
            [*command, "--train_steps=100000", "--eval_every=0"], cwd=REPO, env=child_env(), stdout=out, stderr=out
        )
    try:
        deadline = time.time() + 240
        while "step 10/100000" not in log.read_text() and time.time() < deadline and child.poll() is None:
            time.sleep(0.5)
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=120) == 130, log.read_text()[-3000:]
    finally:
        if child.poll() is None:
            child.kill()
    assert "stopped by SIGINT at step" in log.read_text()
    stopped_at = int(log.read_text().split("stopped by SIGINT at step ")[1].split(";")[0])
    resumed = run_child(*command, "--train_steps=" + str(stopped_at + 5), "--eval_every=0")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed from {model_dir / 'checkpoints'}/ckpt-{stopped_at} at step {stopped_at}" in resumed.stderr


@pytest.fixture(scope="module")
def albert_dir(tmp_path_factory):
    model_dir, printed = demo_run(tmp_path_factory, ALBERT_DEMO, "albert")
    assert "albert pretraining: masked LM (n-grams of up to 3 whole words) + SOP, lamb" in printed
    assert f"wrote the Google-format checkpoint {model_dir / 'model.ckpt-best'} (albert layout" in printed
    return model_dir


@pytest.mark.slow
def test_albert_demo_writes_googles_albert_layout_with_both_heads_and_learns(albert_dir):
    names = ("albert_config.json", "vocab.txt", "model.ckpt-best.index", "best/model.ckpt-best.index")
    for name in names:
        assert (albert_dir / name).exists(), name
    assert not (albert_dir / "bert_config.json").exists()
    variables = read_variables(albert_dir / "model.ckpt-best")
    assert bert_heads.heads_in(variables) == ["masked_lm", "seq_relationship"]
    assert variables["cls/predictions/transform/dense/kernel"][0] == (128, 32)  # hidden -> embedding_size
    assert "bert/encoder/transformer/group_0/inner_group_0/ffn_1/intermediate/dense/kernel" in variables
    assert not any("group_1" in name for name in variables)  # both layers share group 0
    report = json.loads((albert_dir / "eval_report.json").read_text())
    assert report["step"] == 40 and 0 <= report["sop_accuracy"] <= 1 and report["masked_lm_loss"] > 0
    train = read_scalars(albert_dir / "train")
    losses = [value for _, value in train["loss"]]
    assert losses[-1] < losses[0]
    assert {"loss_terms/masked_lm_loss", "loss_terms/sop_loss"} <= set(train)
    assert {"masked_lm_accuracy", "sop_accuracy", "sop_loss"} <= set(read_scalars(albert_dir / "dev"))


@pytest.mark.slow
def test_checkpoint_inspect_names_albert_and_its_heads_and_kner_train_fine_tunes_from_it(albert_dir, tmp_path):
    result = run_child(sys.executable, "-m", "kner.checkpoint", "inspect", str(albert_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "family: albert\n" in result.stdout
    assert "pretraining heads: masked LM (cls/predictions), next-sentence or sentence-order prediction" in result.stdout
    assert "kner can load it: EncoderBackbone (albert layout, embedding 32" in result.stdout
    model_dir = fine_tune_from(albert_dir, tmp_path / "ner")
    assert (model_dir / "vocab.txt").read_text() == (albert_dir / "vocab.txt").read_text()


@pytest.mark.slow
def test_albert_refuses_a_bert_config_and_a_bert_checkpoint(demo_dir, tmp_path):
    result = pretrain_albert(f"--model_dir={tmp_path / 'a'}", "--bert_config=flags/tiny_bert_config.json")
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: flags/tiny_bert_config.json: a bert model, but --model_type=albert pretrains albert")
    result = pretrain_albert(f"--model_dir={tmp_path / 'b'}", f"--init_checkpoint={demo_dir}", "--bert_config=")
    assert result.returncode == 2 and f"error: {demo_dir}: a bert model" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("demo", "prefix"),
    [(ALBERT_DEMO, "model.ckpt-best"), (ELECTRA_DEMO, "electra_model"), (GENERAL_DEMO, "bert_model.ckpt")],
    ids=["albert", "electra", "distillation"],
)
def test_killed_and_rerun_resumes_to_the_uninterrupted_weights(tmp_path, demo, prefix, request):
    """SIGKILL (no chance to save) after a checkpoint; the rerun resumes from
    it and ends with the weights of a run that was never interrupted (ELECTRA:
    generator, heads and the samples drawn from the generator included;
    general distillation: the teacher read again, the student resumed)."""
    if demo == GENERAL_DEMO:  # its teacher: the BERT demo's output
        demo = (*demo, f"--teacher_checkpoint={request.getfixturevalue('demo_dir')}")
    steps = ("--train_steps=40", "--checkpoint_every=4", "--eval_every=0")
    straight = run_child(*demo, f"--model_dir={tmp_path / 'straight'}", *steps)
    assert straight.returncode == 0, straight.stderr[-3000:]
    model_dir = tmp_path / "killed"
    out = subprocess.DEVNULL
    child = subprocess.Popen([*demo, f"--model_dir={model_dir}", *steps], cwd=REPO, env=child_env(), stdout=out)
    try:
        deadline = time.time() + 240
        while not (model_dir / "checkpoints" / "ckpt-8.index").exists() and time.time() < deadline:
            time.sleep(0.1)
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=60) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
    assert not (model_dir / f"{prefix}.index").exists()  # killed before the end
    resumed = run_child(*demo, f"--model_dir={model_dir}", *steps)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed from {model_dir / 'checkpoints'}/ckpt-" in resumed.stderr
    want, got = read_variables(tmp_path / "straight" / prefix), read_variables(model_dir / prefix)
    assert want == got  # names, shapes, dtypes
    a = tf.train.load_checkpoint(str(tmp_path / "straight" / prefix))
    b = tf.train.load_checkpoint(str(model_dir / prefix))
    for name in want:
        np.testing.assert_allclose(b.get_tensor(name), a.get_tensor(name), rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.fixture(scope="module")
def electra_dir(tmp_path_factory):
    model_dir, printed = demo_run(tmp_path_factory, ELECTRA_DEMO, "electra")
    assert (
        "electra pretraining: masked LM (whole words; 85% [MASK], 0% random, 15% kept) by a generator "
        "(32 hidden, 1 head) + replaced-token detection x 50 (temperature 1), adamw"
    ) in printed
    assert f"wrote the Google-format checkpoint {model_dir / 'electra_model'} (electra layout" in printed
    assert "disc_recall" in printed.split("step 5/40")[1].splitlines()[0]  # the training metrics in the log
    return model_dir


ELECTRA_METRICS = {
    "masked_lm_accuracy",
    "masked_lm_loss",
    "disc_loss",
    "disc_accuracy",
    "disc_precision",
    "disc_recall",
    "sampled_replacement_rate",
}


@pytest.mark.slow
def test_electra_demo_writes_googles_electra_layout_learns_and_reports_its_metrics(electra_dir):
    for name in ("discriminator.json", "generator.json", "vocab.txt", "electra_model.index", "best/generator.json"):
        assert (electra_dir / name).exists(), name
    variables = read_variables(electra_dir / "electra_model")
    assert electra_heads.heads_in(variables) == ["generator", "discriminator_predictions"]
    assert bert_heads.heads_in(variables) == []
    assert variables["generator_predictions/dense/kernel"][0] == (32, 64)  # generator hidden -> embedding_size
    assert variables["generator/embeddings_project/kernel"][0] == (64, 32)
    assert not any(name.startswith("generator/embeddings/") for name in variables)  # one shared embedding scope
    generator = json.loads((electra_dir / "generator.json").read_text())
    assert (generator["hidden_size"], generator["num_attention_heads"], generator["intermediate_size"]) == (32, 1, 128)
    report = json.loads((electra_dir / "eval_report.json").read_text())
    assert report["step"] == 40 and [r["step"] for r in report["history"]] == [20, 40]
    assert ELECTRA_METRICS <= set(report) and 0 < report["sampled_replacement_rate"] <= 1
    train = read_scalars(electra_dir / "train")
    losses = [value for _, value in train["loss"]]
    assert losses[-1] < losses[0]
    assert {"loss_terms/masked_lm_loss", "loss_terms/disc_loss"} | ELECTRA_METRICS <= set(train)
    assert ELECTRA_METRICS <= set(read_scalars(electra_dir / "dev"))


@pytest.mark.slow
def test_kner_train_fine_tunes_the_electra_discriminator(electra_dir, tmp_path):
    result = run_child(sys.executable, "-m", "kner.checkpoint", "inspect", str(electra_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "family: electra\n" in result.stdout
    assert (
        "pretraining heads: generator (generator/*, generator_predictions/*), "
        "replaced-token detection (discriminator_predictions/*)"
    ) in result.stdout
    model_dir = fine_tune_from(electra_dir, tmp_path / "ner")
    config = json.loads((model_dir / "bert_config.json").read_text())
    assert config["kner_layout"] == "electra" and config["hidden_size"] == 128


@pytest.mark.slow
def test_electra_continues_with_both_heads_and_refuses_a_bert_config_or_no_generator(electra_dir, tmp_path):
    result = run_child(
        *ELECTRA_DEMO, f"--init_checkpoint={electra_dir}", f"--model_dir={tmp_path / 'continued'}", "--bert_config=",
        "--train_steps=2", "--eval_every=0",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "loaded the generator (generator/*, generator_predictions/*) head" in result.stderr
    assert "loaded the replaced-token detection (discriminator_predictions/*) head" in result.stderr
    assert (
        read_variables(tmp_path / "continued" / "electra_model").keys()
        == read_variables(electra_dir / "electra_model").keys()
    )
    result = run_child(*ELECTRA_DEMO, f"--model_dir={tmp_path / 'b'}", "--bert_config=flags/tiny_bert_config.json")
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: flags/tiny_bert_config.json: a bert model, but --model_type=electra pretrains")
    result = run_child(*ELECTRA_DEMO, f"--model_dir={tmp_path / 'c'}", "--generator_hidden_size=0.001")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: generator_hidden_size 0.001 leaves no generator")


# General distillation (`--model_type=distillation`): the demo's 2-layer BERT teaches a 1-layer student.


def distill_general(teacher: Path, *flags: str):
    return run_child(*GENERAL_DEMO, f"--teacher_checkpoint={teacher}", *flags)


@pytest.fixture(scope="module")
def general_dir(demo_dir, tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("distill_general") / "student"
    result = distill_general(demo_dir, f"--model_dir={model_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"teacher {demo_dir}: BertBackbone with 2 layers, hidden 128" in result.stdout
    assert "new model from the teacher's config: BertBackbone with 1 layers, hidden 128" in result.stdout
    assert "the teacher's layers 0" in result.stdout
    assert (
        "distillation pretraining: masked LM (whole words) taught by a frozen teacher: 5 x KL x T**2 (T=2, masked "
        "positions) + 2 x masked LM + 1 x (1 - cos) of the last hidden states, adamw"
    ) in result.stdout
    assert f"wrote the Google-format checkpoint {model_dir / 'bert_model.ckpt'} (the student:" in result.stdout
    return model_dir


@pytest.mark.slow
def test_general_distillation_demo_writes_the_student_with_its_head_and_logs_each_term(general_dir, demo_dir):
    variables = read_variables(general_dir / "bert_model.ckpt")
    assert bert_heads.heads_in(variables) == ["masked_lm"]
    assert "bert/encoder/layer_0/output/dense/kernel" in variables
    assert not any(name.startswith("bert/encoder/layer_1/") for name in variables)  # the student's one layer
    assert json.loads((general_dir / "bert_config.json").read_text())["num_hidden_layers"] == 1
    assert (general_dir / "vocab.txt").read_text() == (demo_dir / "vocab.txt").read_text()  # the teacher's
    assert (general_dir / "best" / "bert_model.ckpt.index").exists()
    report = json.loads((general_dir / "eval_report.json").read_text())
    assert report["step"] == 40 and 0 <= report["masked_lm_accuracy"] <= 1
    assert report["soft_loss"] > 0 and 0 < report["cosine_loss"] < 2 and 0 <= report["teacher_masked_lm_accuracy"] <= 1
    train = read_scalars(general_dir / "train")
    terms = {f"loss_terms/{term}" for term in ("soft_loss", "masked_lm_loss", "cosine_loss")}
    assert terms <= set(train)
    weighted = sum(w * np.array([v for _, v in train[f"loss_terms/{t}"]]) for t, w in (
        ("soft_loss", 5), ("masked_lm_loss", 2), ("cosine_loss", 1)
    ))  # fmt: skip
    np.testing.assert_allclose(weighted, [v for _, v in train["loss"]], rtol=1e-4)
    assert {"teacher_masked_lm_accuracy", "soft_loss"} <= set(read_scalars(general_dir / "dev"))


@pytest.mark.slow
def test_the_distilled_student_fine_tunes_with_kner_train_and_is_the_student_of_kner_distill(general_dir, tmp_path):
    teacher = fine_tune_from(general_dir, tmp_path / "ner")  # kner.train --init_checkpoint
    assert (teacher / "vocab.txt").read_text() == (general_dir / "vocab.txt").read_text()
    student = tmp_path / "student"  # kner.distill --init_checkpoint: the tagger taught into a fresh copy
    result = run_child(
        sys.executable, "-m", "kner.distill", "--flagfile=flags/distill_demo.cfg", f"--teacher_dir={teacher}",
        f"--init_checkpoint={general_dir}", "--bert_config=", f"--model_dir={student}", "--export_dir=", "--epochs=1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "1 layer(s), hidden 128" in result.stdout
    assert json.loads((student / "eval_report.json").read_text())["epoch"] == 1


@pytest.mark.slow
def test_general_distillation_refuses_copying_layers_into_another_width_in_one_line(demo_dir, tmp_path):
    config = tmp_path / "narrow.json"
    config.write_text(json.dumps({**json.loads((REPO / "flags/tiny_bert_config.json").read_text()), "hidden_size": 64}))
    result = distill_general(demo_dir, f"--model_dir={tmp_path / 'a'}", f"--bert_config={config}")
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "the student has hidden_size 64 and the teacher 128: copying teacher layers needs equal hidden_size" in last
    assert "Traceback" not in result.stderr
    result = distill_general(demo_dir, f"--model_dir={tmp_path / 'b'}", "--init_student_from_teacher_layers=0,5")
    assert result.returncode != 0
    assert "teacher layer 5 is out of range: the teacher has layers 0-1" in result.stderr.strip().splitlines()[-1]
