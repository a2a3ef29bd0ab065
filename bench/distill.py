"""Distillation on CLUENER2020: a 4-layer/256 CRF teacher taught into a
2-layer/128 CRF student, in one run:

- teacher: `kner.train`, 4L/256 (bench/bert_4L_256.json) from scratch with
  flags/tiny.cfg's recipe, `--teacher_epochs` epochs;
- student alone: `kner.train`, 2L/128 (flags/tiny_bert_config.json), the same
  recipe for `--student_epochs` epochs;
- student distilled: `kner.distill --flagfile=flags/distill_cluener.cfg`
  (labelled data only), the same budget (epochs, batches, learning rates);
- student distilled + raw text: the same plus `--unlabeled_files` (the
  shared raw corpora `corpus/*.txt`, the book reviews' label column
  stripped, any line holding a CLUENER dev or test text dropped),
  `--unlabeled_batch_size` raw texts per step labelled by the teacher;
- student distilled with the hard loss too (`--hard_loss_weight=1`), once
  with the teacher's CRF transitions copied and once learned from zero;
  then (copied) with the soft loss weighted T**2 = 64 (Hinton's scale), and
  with raw text.

The runs train three, then two and two, at a time (2 cores). Reported: dev
micro F1 (best epoch), training wall time (settings.json to the last
checkpoint, dev evaluations included, on a shared machine), the share of
the gap between the student alone and the teacher that distillation
recovers; serving speed of the exported SavedModels, teacher against the
distilled student, interleaved in one process (CLUENER dev, batches of 32;
batch-1 latency); the cost of the teacher per training step (same batches,
one process); and how the CRF transitions matter: the distilled
student's emission scores decoded with the transitions it was trained with
(copied from the teacher), with zero transitions (what learning them gives
when there is no hard loss), and with the student-alone run's learned ones.

Runs whose model_dir already holds a finished run are reused (kner resumes
an interrupted one when the same command is rerun).

    PYTHONPATH=. nice -n 10 .venv/bin/python bench/distill.py --json=bench/results/distill_cluener.json
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from absl import app, flags
from common import ROOT, SHARED, machine, print_table, write_json

from kner.backbones.bert import backbone_from_config, read_bert_config
from kner.data.corpus import read_corpus
from kner.data.pipeline import batched, encode
from kner.data.spans import Span
from kner.data.unlabeled import UnlabeledInputs
from kner.metrics import evaluate
from kner.models.artifacts import dummy_batch, load_tagger
from kner.models.tagger import Tagger
from kner.serving.predictor import Predictor
from kner.serving.saved_model import export_model
from kner.serving.text_tagger import TextTagger
from kner.training.distillation import Distiller
from kner.training.optimization import FineTuningAdamW
from kner.training.trainer import TrainConfig, Trainer

FLAGS = flags.FLAGS
flags.DEFINE_string("work_dir", "runs/distill_bench", "Where the runs, raw text and exports go.")
flags.DEFINE_integer("teacher_epochs", 3, "Teacher training epochs.")
flags.DEFINE_integer("student_epochs", 2, "Epochs of every student run (the same budget).")
flags.DEFINE_integer("unlabeled_batch_size", 16, "Raw texts per step in the raw-text run.")
flags.DEFINE_integer("latency_sentences", 200, "Single-text calls timed for latency, per round.")
flags.DEFINE_integer("rounds", 2, "Interleaved serving rounds.")
flags.DEFINE_string("json", None, "Also write the results here.")

CLUENER = SHARED / "cluener"
CORPORA = ("clue_corpus_small_sample.txt", "chnsenticorp.txt", "book_review.txt")


def commands(work: Path, raw: list[Path]) -> dict[str, list[str]]:
    data = [f"--train_file={CLUENER / 'train.json'}", f"--dev_file={CLUENER / 'dev.json'}"]
    student = [f"--epochs={FLAGS.student_epochs}", "--max_seq_length=64"]
    distill = ["-m", "kner.distill", "--flagfile=flags/distill_cluener.cfg", f"--teacher_dir={work / 'teacher'}"]
    distill += [*data, f"--epochs={FLAGS.student_epochs}"]
    # Every loss setting spelled out (later flags win), whatever the flagfile recommends.
    distill += ["--temperature=8", "--soft_loss_weight=1", "--hard_loss_weight=0", "--hidden_loss_weight=1"]
    distill += ["--crf_transitions=copy"]
    return {
        "teacher": [
            "-m", "kner.train", "--flagfile=flags/tiny.cfg", "--bert_config=bench/bert_4L_256.json", *data,
            f"--model_dir={work / 'teacher'}", f"--epochs={FLAGS.teacher_epochs}",
        ],
        "student_alone": ["-m", "kner.train", "--flagfile=flags/tiny.cfg", *data, *student,
                          f"--model_dir={work / 'student_alone'}"],
        "distilled": [*distill, f"--model_dir={work / 'distilled'}"],
        "distilled_raw_text": [
            *distill, f"--model_dir={work / 'distilled_raw_text'}", f"--unlabeled_files={','.join(map(str, raw))}",
            f"--unlabeled_batch_size={FLAGS.unlabeled_batch_size}",
        ],
        # How CRF transitions are taught, with a hard loss that can move them.
        "distilled_hard_copy": [*distill, f"--model_dir={work / 'distilled_hard_copy'}", "--hard_loss_weight=1",
                                "--crf_transitions=copy"],
        "distilled_hard_learn": [*distill, f"--model_dir={work / 'distilled_hard_learn'}", "--hard_loss_weight=1",
                                 "--crf_transitions=learn"],
        # The hard loss with Hinton's T**2 scale on the soft one, and with raw text.
        "distilled_hard_soft64": [*distill, f"--model_dir={work / 'distilled_hard_soft64'}", "--hard_loss_weight=1",
                                  "--soft_loss_weight=64"],
        "distilled_hard_raw_text": [
            *distill, f"--model_dir={work / 'distilled_hard_raw_text'}", "--hard_loss_weight=1",
            f"--unlabeled_files={','.join(map(str, raw))}", f"--unlabeled_batch_size={FLAGS.unlabeled_batch_size}",
        ],
    }  # fmt: skip


def raw_text(work: Path) -> tuple[list[Path], dict]:
    """The shared corpora as one text a line, without the book reviews'
    labels and without any line that holds a CLUENER dev or test text."""
    held_out = [s.text for name in ("dev.json", "test.json") for s in read_corpus(CLUENER / name)]
    held_out = [t for t in held_out if len(t) >= 8]  # shorter ones are common phrases
    out, facts = work / "raw", {"lines": 0, "characters": 0, "dropped_lines_with_dev_or_test_text": 0}
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in CORPORA:
        lines = (SHARED / "corpus" / name).read_text(encoding="utf-8").splitlines()
        if name == "book_review.txt":
            lines = [line.split("\t", 1)[-1] for line in lines]
        kept = [line for line in lines if line.strip() and not any(t in line for t in held_out)]
        facts["dropped_lines_with_dev_or_test_text"] += sum(bool(line.strip()) for line in lines) - len(kept)
        facts["lines"] += len(kept)
        facts["characters"] += sum(map(len, kept))
        paths.append(out / name)
        paths[-1].write_text("\n".join(kept) + "\n", encoding="utf-8")
    return paths, facts


def finished(model_dir: Path) -> bool:
    return (model_dir / "eval_report.json").exists() and (model_dir / "checkpoints" / "checkpoint").exists()


def start(work: Path, name: str, command: list[str]) -> subprocess.Popen | None:
    if finished(work / name) and done_epochs(work / name) >= epochs_of(command):
        print(f"{name}: reusing {work / name}", flush=True)
        return None
    print(f"{name}: python {' '.join(command)}", flush=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    log = open(work / f"{name}.log", "a")
    return subprocess.Popen([sys.executable, *command], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def epochs_of(command: list[str]) -> int:
    return int([c for c in command if c.startswith("--epochs=")][-1].split("=")[1])


def done_epochs(model_dir: Path) -> int:
    flags_text = (model_dir / "flags.cfg").read_text()
    return int([line for line in flags_text.splitlines() if line.startswith("--epochs=")][-1].split("=")[1])


def wait(processes: dict[str, subprocess.Popen | None], work: Path) -> None:
    """Waits for each run and writes its peak RSS to `work/NAME.rss_mib`."""
    for name, process in processes.items():
        if process is None:
            continue
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode:
            raise RuntimeError(f"{name} failed: see {work / f'{name}.log'}")
        (work / f"{name}.rss_mib").write_text(f"{usage.ru_maxrss / 1024:.0f}\n")


def run_facts(model_dir: Path) -> dict:
    report = json.loads((model_dir / "eval_report.json").read_text())
    started = (model_dir / "settings.json").stat().st_mtime
    ended = (model_dir / "checkpoints" / "checkpoint").stat().st_mtime
    step = tf.train.latest_checkpoint(str(model_dir / "checkpoints")).rsplit("-", 1)[1]
    rss = model_dir.parent / f"{model_dir.name}.rss_mib"
    return {
        "f1": report["micro"]["f1"],
        "best_epoch": report["epoch"],
        "steps": int(step),
        "minutes": (ended - started) / 60,
        "peak_rss_mib": int(rss.read_text()) if rss.exists() else None,
    }


def transitions_effect(work: Path, dev) -> dict:
    """Dev F1 of the distilled student's emissions under three transition sets."""
    model, tokenizer, settings = load_tagger(work / "distilled")
    alone = load_tagger(work / "student_alone")[0]
    texts, gold = [s.text for s in dev], [s.spans for s in dev]
    trained = [v.numpy() for v in (model.crf.transitions, model.crf.start_transitions, model.crf.end_transitions)]
    learned = [v.numpy() for v in (alone.crf.transitions, alone.crf.start_transitions, alone.crf.end_transitions)]
    variables = (model.crf.transitions, model.crf.start_transitions, model.crf.end_transitions)
    cases = {"copied (trained with)": trained, "zero": [np.zeros_like(v) for v in trained], "student alone's": learned}
    results = {}
    for name, values in cases.items():
        for variable, value in zip(variables, values):
            variable.assign(value)
        predictor = Predictor(TextTagger(model, tokenizer, settings["max_seq_length"]))
        entities = predictor.predict(texts, batch_size=64)
        predicted = [[Span(e.start, e.end, e.type) for e in found] for found in entities]
        results[name] = evaluate(texts, gold, predicted)["micro"]["f1"]
    return results


def step_cost(work: Path, raw: list[Path], steps: int = 20) -> dict:
    """Milliseconds per training step (forward, backward, AdamW) on the same
    CLUENER batches of 32, interleaved over 3 rounds in this process: the
    2L/128 student alone, distilled (the teacher's forward pass added), and
    distilled with 16 raw texts per step (the raw-text run's setting)."""
    teacher, tokenizer, _ = load_tagger(work / "teacher")
    config = {**read_bert_config(ROOT / "flags" / "tiny_bert_config.json"), "vocab_size": tokenizer.vocabulary_size}
    train = read_corpus(CLUENER / "train.json")
    data = encode(train, tokenizer, teacher.labels, max_chars=62)
    labelled = batched(data, tokenizer, 32, seed=1).take(steps)
    with_raw = UnlabeledInputs(raw, tokenizer, FLAGS.unlabeled_batch_size, steps, 62, seed=1)(labelled, 0)
    cases = {}
    for name, dataset in (("student alone", labelled), ("distilled", labelled), ("distilled + raw text", with_raw)):
        student = Tagger(backbone_from_config(config), teacher.labels)
        student(dummy_batch())
        model = student if name == "student alone" else Distiller(student, teacher)
        optimizer = FineTuningAdamW(1e-4)
        optimizer.build(model.trainable_variables)
        trainer = Trainer(model, optimizer, tf.distribute.get_strategy(), work / "step_cost" / name, TrainConfig())
        step = tf.function(trainer.train_step, input_signature=[dataset.element_spec])
        batches = list(dataset)
        for batch in batches[:3]:  # warm-up
            step(batch)
        cases[name] = (step, batches)
    times = {name: [] for name in cases}
    for _ in range(3):
        for name, (step, batches) in cases.items():
            for batch in batches:
                started = time.perf_counter()
                step(batch).numpy()
                times[name].append(1e3 * (time.perf_counter() - started))
    return {name: float(np.median(values)) for name, values in times.items()}


def serving(work: Path, dev) -> dict:
    """Sentences/s (batches of 32) and batch-1 latency of the teacher's and
    the distilled student's SavedModels, interleaved."""
    texts = [s.text for s in dev]
    signatures = {}
    for name in ("teacher", "distilled"):
        export = work / "export" / name
        version = export / "1" if (export / "1").exists() else export_model(work / name, export)
        signatures[name] = tf.saved_model.load(str(version)).signatures["serving_default"]
    throughput = {name: [] for name in signatures}
    latency = {name: [] for name in signatures}
    for signature in signatures.values():  # warm-up
        signature(text=tf.constant(texts[:32]))
        signature(text=tf.constant(texts[:1]))
    for _ in range(FLAGS.rounds):
        for name, signature in signatures.items():
            started = time.perf_counter()
            for i in range(0, len(texts), 32):
                signature(text=tf.constant(texts[i : i + 32]))["num_entities"].numpy()
            throughput[name].append(len(texts) / (time.perf_counter() - started))
            for text in texts[: FLAGS.latency_sentences]:
                started = time.perf_counter()
                signature(text=tf.constant([text]))["num_entities"].numpy()
                latency[name].append(1e3 * (time.perf_counter() - started))
    return {
        name: {
            "sentences_per_s": max(throughput[name]),
            "rounds_sentences_per_s": throughput[name],
            "latency_ms_p50": float(np.percentile(latency[name], 50)),
            "latency_ms_p95": float(np.percentile(latency[name], 95)),
        }
        for name in signatures
    }


def main(argv) -> None:
    del argv
    facts = machine()
    work = ROOT / FLAGS.work_dir
    work.mkdir(parents=True, exist_ok=True)
    raw, raw_facts = raw_text(work)
    print(f"raw text: {raw_facts}", flush=True)
    planned = commands(work, raw)
    wait({"teacher": start(work, "teacher", planned["teacher"])}, work)
    waves = [("student_alone", "distilled", "distilled_raw_text"), ("distilled_hard_copy", "distilled_hard_learn")]
    for wave in [*waves, ("distilled_hard_soft64", "distilled_hard_raw_text")]:
        wait({name: start(work, name, planned[name]) for name in wave}, work)
    runs = {name: run_facts(work / name) for name in planned}
    teacher, alone = runs["teacher"]["f1"], runs["student_alone"]["f1"]
    for name in [name for name in runs if name.startswith("distilled")]:
        runs[name]["gap_recovered"] = (runs[name]["f1"] - alone) / (teacher - alone)
    dev = read_corpus(CLUENER / "dev.json")
    transitions = transitions_effect(work, dev)
    speed = serving(work, dev)
    cost = step_cost(work, raw)
    rows = [
        [name, "4L/256" if name == "teacher" else "2L/128", facts_["f1"], facts_["best_epoch"], facts_["steps"],
         facts_["minutes"], facts_["peak_rss_mib"], facts_.get("gap_recovered")]
        for name, facts_ in runs.items()
    ]  # fmt: skip
    print(f"CLUENER dev micro F1; load at start {facts['loadavg_at_start']}")
    header = ["run", "model", "dev F1", "best epoch", "steps", "wall minutes", "peak RSS MiB", "gap recovered"]
    table = print_table(header, rows)
    ratio = speed["distilled"]["sentences_per_s"] / speed["teacher"]["sentences_per_s"]
    latency_ratio = speed["teacher"]["latency_ms_p50"] / speed["distilled"]["latency_ms_p50"]
    speed_rows = [[name, s["sentences_per_s"], s["latency_ms_p50"], s["latency_ms_p95"]] for name, s in speed.items()]
    speed_table = print_table(["SavedModel", "sentences/s (batch 32)", "batch-1 p50 ms", "batch-1 p95 ms"], speed_rows)
    print(f"student / teacher: {ratio:.2f}x sentences/s, {latency_ratio:.2f}x lower batch-1 p50 latency")
    cost_table = print_table(
        ["training step, batch of 32", "ms (median)", "vs student alone"],
        [[name, ms, ms / cost["student alone"]] for name, ms in cost.items()],
    )
    transition_table = print_table(
        ["distilled student's emissions decoded with transitions", "dev F1"], [[k, v] for k, v in transitions.items()]
    )
    write_json(
        FLAGS.json,
        {
            "machine": facts,
            "commands": {name: "python " + " ".join(c) for name, c in planned.items()},
            "raw_text": raw_facts,
            "runs": runs,
            "serving": speed,
            "student_over_teacher_sentences_per_s": ratio,
            "teacher_over_student_latency_p50": latency_ratio,
            "transitions": transitions,
            "step_ms": cost,
            "tables": [table, speed_table, cost_table, transition_table],
        },
    )


if __name__ == "__main__":
    app.run(main)
