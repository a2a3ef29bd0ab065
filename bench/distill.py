"""Distillation: a 4-layer/256 CRF teacher taught into a 2-layer/128 CRF
student, on CLUENER2020 or People's Daily (`--corpus`), in one run:

- teacher: `kner.train`, 4L/256 (bench/bert_4L_256.json) from scratch with
  flags/tiny.cfg's recipe and seed, `--teacher_epochs` epochs (default 3)
  and any `--teacher_flags`; one teacher per corpus, whatever `--seed` the
  students use;
- student alone: `kner.train`, 2L/128 (flags/tiny_bert_config.json), the same
  recipe for `--student_epochs` epochs;
- the distilled students, `kner.distill --flagfile=flags/distill_<corpus>.cfg`
  with the same budget (epochs, batches, learning rates) and every loss
  setting spelled out (`RECIPES`): TextBrewer's recipe (soft and hidden
  losses, no hard loss), the hard loss on top with the teacher's CRF
  transitions copied or learned from zero, the soft loss scaled by
  T**2 = 64 (`--soft_loss_t_squared`, Hinton's and DistilBERT's scale)
  without and with the hard loss (flags/distill_cluener.cfg's recipe), and
  runs with raw text (`--unlabeled_files`: the shared raw corpora
  `corpus/*.txt`, the book reviews' label column stripped, any line holding
  a dev (or CLUENER test) text dropped; `--unlabeled_batch_size` raw texts
  per step labelled by the teacher). `--runs` picks the students; the
  default is every CLUENER one, and on People's Daily the student alone
  and TextBrewer's recipe (flags/distill_peoples_daily.cfg's) without and
  with raw text.

People's Daily trains on its first `--train_limit` sentences (20,000 by
default: on 10,000 the from-scratch teacher stops near 0.56 dev F1 however
long it trains, within 2 points of a student trained for 6 epochs, which
leaves little to distil; bench/README.md, "Distillation"), written by bench
common.subset as bench/scaling.py and the pretraining bench do, and read
leniently as bench/accuracy.py does.

The runs train two at a time (2 cores): the teacher beside the student
alone (which does not need it), then the distilled students. Reported: dev micro F1 (best epoch), training wall
time (settings.json to the last checkpoint, dev evaluations included, on a
shared machine), the share of the gap between the student alone and the
teacher that distillation recovers; with `--speed`, the serving speed of
the exported SavedModels, teacher against a distilled student, interleaved
in one process (dev, batches of 32; batch-1 latency through the Python
signature and through a TF1 session, TF Serving's path, after a warm-up
over the timed texts; `--threads` intra-op threads), and the cost of the
teacher per training step (same batches, one process); and on CLUENER how
the CRF transitions matter: the TextBrewer-recipe student's emission
scores decoded with the transitions it was trained with (copied from the
teacher), with zero transitions (what learning them gives when there is no
hard loss), and with the student-alone run's learned ones.

Runs go to `--work_dir/CORPUS/teacher` and `--work_dir/CORPUS/seedN/RUN`.
Runs whose model_dir already holds a finished run are reused (kner resumes
an interrupted one when the same command is rerun).

    PYTHONPATH=. nice -n 10 .venv/bin/python bench/distill.py   # -> bench/results/distill_cluener.json#seed42
    PYTHONPATH=. nice -n 10 .venv/bin/python bench/distill.py --corpus=peoples_daily \\
        --teacher_flags=--mixed_precision=mixed_bfloat16   # -> distill_peoples_daily.json#seed42
    PYTHONPATH=. nice -n 10 .venv/bin/python bench/distill.py --corpus=peoples_daily --nospeed --seed=7 \\
        --teacher_flags=--mixed_precision=mixed_bfloat16 --runs=student_alone,distilled   # -> #seed7
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import tensorflow as tf
from absl import app, flags
from common import JSON_HELP, ROOT, SHARED, machine, print_table, result_file, set_threads, subset, write_json
from tf_session import Session

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
flags.DEFINE_enum("corpus", "cluener", ["cluener", "peoples_daily"], "Data set.")
flags.DEFINE_string("work_dir", "runs/distill_bench", "Where the runs, raw text and exports go (a folder per corpus).")
flags.DEFINE_integer("train_limit", 20000, "People's Daily: train on its first N sentences (0: all 50,658).")
flags.DEFINE_integer("seed", 42, "Seed of the student runs (the teacher keeps flags/tiny.cfg's).")
flags.DEFINE_list("runs", None, "Student runs (names of RECIPES and student_alone); default: the corpus's set.")
flags.DEFINE_integer("teacher_epochs", 3, "Teacher training epochs.")
flags.DEFINE_list("teacher_flags", [], "Extra kner.train flags of the teacher, e.g. --mixed_precision=mixed_bfloat16.")
flags.DEFINE_integer("student_epochs", 2, "Epochs of every student run (the same budget).")
flags.DEFINE_integer("unlabeled_batch_size", 16, "Raw texts per step in the raw-text runs.")
flags.DEFINE_bool("speed", True, "Also time serving and the training step (wants a quiet machine).")
flags.DEFINE_integer("latency_sentences", 200, "Single-text calls timed for latency, per round.")
flags.DEFINE_integer("rounds", 2, "Interleaved serving rounds.")
flags.DEFINE_integer("threads", 2, "Intra-op threads of this process (serving and step-cost timing).")
flags.DEFINE_string("json", None, JSON_HELP + "bench/results/distill_CORPUS.json#seedSEED.")


class Corpus(NamedTuple):
    train: Path
    dev: Path
    held_out: tuple[str, ...]  # files beside `train` whose texts the raw text must not hold
    flags: list[str]  # extra flags of every run
    max_seq_length: int  # the students'


# CLUENER texts are at most 50 characters; People's Daily's at most 100 (p99 97): neither is cut.
CORPORA = {
    "cluener": Corpus(
        SHARED / "cluener" / "train.json", SHARED / "cluener" / "dev.json", ("dev.json", "test.json"), [], 64
    ),
    "peoples_daily": Corpus(
        SHARED / "peoples_daily" / "train.txt", SHARED / "peoples_daily" / "dev.txt", ("dev.txt",), ["--lenient"], 128
    ),
}  # fmt: skip
RAW_TEXT = ("clue_corpus_small_sample.txt", "chnsenticorp.txt", "book_review.txt")
TEXTBREWER = [
    "--temperature=8", "--soft_loss_weight=1", "--nosoft_loss_t_squared", "--hard_loss_weight=0",
    "--hidden_loss_weight=1",
]  # fmt: skip
# Student run -> the kner.distill flags on top of TextBrewer's recipe (later flags win); "raw" adds the raw text.
RECIPES = {
    "distilled": [],
    "distilled_raw_text": ["raw"],
    # How CRF transitions are taught, with a hard loss that can move them.
    "distilled_hard_copy": ["--hard_loss_weight=1", "--crf_transitions=copy"],
    "distilled_hard_learn": ["--hard_loss_weight=1", "--crf_transitions=learn"],
    # Hinton's T**2 scale on the soft loss (T = 8: 64x; DistilBERT's too), without and with the hard loss
    # (flags/distill_cluener.cfg), and with raw text.
    "distilled_t2": ["--soft_loss_t_squared"],
    "distilled_hard_t2": ["--hard_loss_weight=1", "--soft_loss_t_squared"],
    "distilled_hard_raw_text": ["--hard_loss_weight=1", "raw"],
    "distilled_hard_t2_raw_text": ["--hard_loss_weight=1", "--soft_loss_t_squared", "raw"],
}
# Earlier names of runs (bench/README.md's commands, results JSON): before --soft_loss_t_squared the T**2
# runs took --soft_loss_weight=64, the same loss at T = 8.
RENAMED = {"distilled_hard_soft64": "distilled_hard_t2", "distilled_hard_soft64_raw_text": "distilled_hard_t2_raw_text"}
DEFAULT_RUNS = {
    "cluener": ["student_alone", *[name for name in RECIPES if name != "distilled_hard_t2_raw_text"]],
    "peoples_daily": ["student_alone", "distilled", "distilled_raw_text"],
}


def commands(work: Path, seed_dir: Path, train: Path, raw: list[Path], runs: list[str]) -> dict[str, list[str]]:
    """The command of the teacher and of each of `runs`."""
    corpus = CORPORA[FLAGS.corpus]
    data = [f"--train_file={train}", f"--dev_file={corpus.dev}", *corpus.flags]
    student = [f"--epochs={FLAGS.student_epochs}", f"--max_seq_length={corpus.max_seq_length}", f"--seed={FLAGS.seed}"]
    planned = {
        "teacher": [
            "-m", "kner.train", "--flagfile=flags/tiny.cfg", "--bert_config=bench/bert_4L_256.json", *data,
            f"--model_dir={work / 'teacher'}", f"--epochs={FLAGS.teacher_epochs}", *FLAGS.teacher_flags,
        ],
    }  # fmt: skip
    distill = ["-m", "kner.distill", f"--flagfile=flags/distill_{FLAGS.corpus}.cfg"]
    distill += [f"--teacher_dir={work / 'teacher'}", *data, *student, *TEXTBREWER, "--crf_transitions=copy"]
    raw_flags = [f"--unlabeled_files={','.join(map(str, raw))}", f"--unlabeled_batch_size={FLAGS.unlabeled_batch_size}"]
    for name in runs:
        if name == "student_alone":
            command = ["-m", "kner.train", "--flagfile=flags/tiny.cfg", *data, *student]
        elif RENAMED.get(name, name) in RECIPES:
            recipe = RECIPES[RENAMED.get(name, name)]
            command = [*distill, *[f for r in recipe for f in (raw_flags if r == "raw" else [r])]]
        else:
            raise app.UsageError(f"--runs: unknown run {name!r}; known: student_alone, {', '.join(RECIPES)}")
        planned[name] = [*command, f"--model_dir={seed_dir / name}"]
    return planned


def held_out_texts() -> list[str]:
    """The dev (and CLUENER test) texts the raw text must not hold; shorter
    ones than 8 characters are common phrases."""
    corpus = CORPORA[FLAGS.corpus]
    texts = [s.text for name in corpus.held_out for s in read_corpus(corpus.train.parent / name, strict=False)]
    return [t for t in texts if len(t) >= 8]


def holds_any(line: str, texts_by_prefix: dict[str, list[str]]) -> bool:
    """Whether `line` holds one of the texts, indexed by their first 8 characters."""
    return any(
        line.startswith(text, i) for i in range(len(line) - 7) for text in texts_by_prefix.get(line[i : i + 8], ())
    )


def raw_text(work: Path) -> tuple[list[Path], dict]:
    """The shared corpora as one text a line, without the book reviews'
    labels and without any line that holds a held-out text."""
    texts_by_prefix: dict[str, list[str]] = {}
    for text in held_out_texts():
        texts_by_prefix.setdefault(text[:8], []).append(text)
    out, facts = work / "raw", {"lines": 0, "characters": 0, "dropped_lines_with_dev_or_test_text": 0}
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in RAW_TEXT:
        lines = (SHARED / "corpus" / name).read_text(encoding="utf-8").splitlines()
        if name == "book_review.txt":
            lines = [line.split("\t", 1)[-1] for line in lines]
        kept = [line for line in lines if line.strip() and not holds_any(line, texts_by_prefix)]
        facts["dropped_lines_with_dev_or_test_text"] += sum(bool(line.strip()) for line in lines) - len(kept)
        facts["lines"] += len(kept)
        facts["characters"] += sum(map(len, kept))
        paths.append(out / name)
        paths[-1].write_text("\n".join(kept) + "\n", encoding="utf-8")
    return paths, facts


def train_file(work: Path) -> tuple[Path, int]:
    """The training file (People's Daily: its first `--train_limit`
    sentences, written to `work`) and its sentence count."""
    path = CORPORA[FLAGS.corpus].train
    count = len(read_corpus(path, strict=False))
    if FLAGS.corpus == "cluener" or not FLAGS.train_limit or FLAGS.train_limit >= count:
        return path, count
    return subset(path, FLAGS.train_limit, work), FLAGS.train_limit


def finished(model_dir: Path) -> bool:
    return (model_dir / "eval_report.json").exists() and (model_dir / "checkpoints" / "checkpoint").exists()


def flag_value(command: list[str], name: str) -> str:
    """The value of the last `--name=` in `command` (the one that wins)."""
    return [c for c in command if c.startswith(f"--{name}=")][-1].split("=", 1)[1]


def reusable(command: list[str]) -> bool:
    """Whether the run's model_dir holds a finished run of as many epochs."""
    model_dir = Path(flag_value(command, "model_dir"))
    return finished(model_dir) and done_epochs(model_dir) >= int(flag_value(command, "epochs"))


def start(name: str, command: list[str]) -> subprocess.Popen | None:
    model_dir = Path(flag_value(command, "model_dir"))
    if reusable(command):
        print(f"{name}: reusing {model_dir}", flush=True)
        return None
    print(f"{name}: python {' '.join(command)}", flush=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    log = open(model_dir.parent / f"{name}.log", "a")
    return subprocess.Popen([sys.executable, *command], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def done_epochs(model_dir: Path) -> int:
    return int(flag_value((model_dir / "flags.cfg").read_text().splitlines(), "epochs"))


def wait(processes: dict[str, subprocess.Popen | None], planned: dict[str, list[str]]) -> None:
    """Waits for each run and writes its peak RSS to `NAME.rss_mib` beside its model_dir."""
    for name, process in processes.items():
        if process is None:
            continue
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        model_dir = Path(flag_value(planned[name], "model_dir"))
        if process.returncode:
            raise RuntimeError(f"{name} failed: see {model_dir.parent / f'{name}.log'}")
        (model_dir.parent / f"{name}.rss_mib").write_text(f"{usage.ru_maxrss / 1024:.0f}\n")


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


def transitions_effect(seed_dir: Path, dev) -> dict:
    """Dev F1 of the TextBrewer-recipe student's emissions under three transition sets."""
    model, tokenizer, settings = load_tagger(seed_dir / "distilled")
    alone = load_tagger(seed_dir / "student_alone")[0]
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


def step_cost(work: Path, train: Path, raw: list[Path], steps: int = 20) -> dict:
    """Milliseconds per training step (forward, backward, AdamW) on the same
    training batches of 32, interleaved over 3 rounds in this process: the
    2L/128 student alone, distilled (the teacher's forward pass added), and
    distilled with 16 raw texts per step (the raw-text runs' setting)."""
    teacher, tokenizer, _ = load_tagger(work / "teacher")
    config = {**read_bert_config(ROOT / "flags" / "tiny_bert_config.json"), "vocab_size": tokenizer.vocabulary_size}
    max_chars = CORPORA[FLAGS.corpus].max_seq_length - 2
    data = encode(read_corpus(train, strict=False), tokenizer, teacher.labels, max_tokens=max_chars)
    labelled = batched(data, tokenizer, 32, seed=1).take(steps)
    with_raw = UnlabeledInputs(raw, tokenizer, FLAGS.unlabeled_batch_size, steps, max_chars, seed=1)(labelled, 0)
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


def serving(work: Path, student_dir: Path, dev) -> dict:
    """Sentences/s (batches of 32) and batch-1 latency of the teacher's and
    a distilled student's SavedModels, interleaved; batch-1 latency both
    through `tf.saved_model.load`'s signature and through a TF1 session (TF
    Serving's path)."""
    texts = [s.text for s in dev]
    signatures, sessions = {}, {}
    for name, model_dir in (("teacher", work / "teacher"), ("distilled", student_dir)):
        export = work / "export" / name
        version = export / "1" if (export / "1").exists() else export_model(model_dir, export)
        signatures[name] = tf.saved_model.load(str(version)).signatures["serving_default"]
        sessions[name] = Session(version, FLAGS.threads)
    throughput = {name: [] for name in signatures}
    latency = {name: [] for name in signatures}
    session_latency = {name: [] for name in signatures}
    # Warm-up, as a server in its steady state is: oneDNN builds its matmul
    # primitives per input shape, so each text length is slow on first sight.
    for name, signature in signatures.items():
        signature(text=tf.constant(texts[:32]))
        for text in texts[: FLAGS.latency_sentences]:
            signature(text=tf.constant([text]))
            sessions[name]([text.encode()])
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
            for text in texts[: FLAGS.latency_sentences]:  # a path at a time, as a server runs one
                started = time.perf_counter()
                sessions[name]([text.encode()])
                session_latency[name].append(1e3 * (time.perf_counter() - started))
    return {
        name: {
            "sentences_per_s": max(throughput[name]),
            "rounds_sentences_per_s": throughput[name],
            "latency_ms_p50": float(np.percentile(latency[name], 50)),
            "latency_ms_p95": float(np.percentile(latency[name], 95)),
            "session_latency_ms_p50": float(np.percentile(session_latency[name], 50)),
            "session_latency_ms_p95": float(np.percentile(session_latency[name], 95)),
        }
        for name in signatures
    }


def main(argv) -> None:
    del argv
    set_threads(FLAGS.threads)
    facts = machine()
    work = ROOT / FLAGS.work_dir / FLAGS.corpus
    seed_dir = work / f"seed{FLAGS.seed}"
    seed_dir.mkdir(parents=True, exist_ok=True)
    train, sentences = train_file(work)
    raw, raw_facts = raw_text(work)
    print(f"train: {train} ({sentences:,} sentences); raw text: {raw_facts}", flush=True)
    planned = commands(work, seed_dir, train, raw, FLAGS.runs or DEFAULT_RUNS[FLAGS.corpus])
    students = [name for name in planned if name != "teacher"]
    distilled = [name for name in students if name != "student_alone"]
    # Two runs at a time; the student alone does not need the teacher, so it trains beside it.
    if reusable(planned["teacher"]):
        waves = [students[i : i + 2] for i in range(0, len(students), 2)]
    else:
        first = ["teacher", *[name for name in students if name == "student_alone"]]
        waves = [first, *[distilled[i : i + 2] for i in range(0, len(distilled), 2)]]
    for wave in waves:
        wait({name: start(name, planned[name]) for name in wave}, planned)
    runs = {name: run_facts(Path(flag_value(command, "model_dir"))) for name, command in planned.items()}
    if "student_alone" in runs:
        teacher, alone = runs["teacher"]["f1"], runs["student_alone"]["f1"]
        for name in distilled:
            runs[name]["gap_recovered"] = (runs[name]["f1"] - alone) / (teacher - alone)
    dev = read_corpus(CORPORA[FLAGS.corpus].dev, strict=False)
    rows = [
        [name, "4L/256" if name == "teacher" else "2L/128", facts_["f1"], facts_["best_epoch"], facts_["steps"],
         facts_["minutes"], facts_["peak_rss_mib"], facts_.get("gap_recovered")]
        for name, facts_ in runs.items()
    ]  # fmt: skip
    print(f"{FLAGS.corpus} dev micro F1, student seed {FLAGS.seed}; load at start {facts['loadavg_at_start']}")
    header = ["run", "model", "dev F1", "best epoch", "steps", "wall minutes", "peak RSS MiB", "gap recovered"]
    results = {
        "machine": facts,
        "corpus": FLAGS.corpus,
        "train_file": str(train),
        "train_sentences": sentences,
        "student_seed": FLAGS.seed,
        "commands": {name: "python " + " ".join(c) for name, c in planned.items()},
        "raw_text": raw_facts,
        "runs": runs,
        "tables": [print_table(header, rows)],
    }
    if {"distilled", "student_alone"} <= set(runs):
        transitions = transitions_effect(seed_dir, dev)
        results["transitions"] = transitions
        results["tables"].append(
            print_table(
                ["distilled student's emissions decoded with transitions", "dev F1"],
                [[k, v] for k, v in transitions.items()],
            )
        )
    if FLAGS.speed and distilled:
        speed = serving(work, Path(flag_value(planned[distilled[0]], "model_dir")), dev)
        cost = step_cost(work, train, raw)
        ratio = speed["distilled"]["sentences_per_s"] / speed["teacher"]["sentences_per_s"]
        latency_ratio = speed["teacher"]["latency_ms_p50"] / speed["distilled"]["latency_ms_p50"]
        session_ratio = speed["teacher"]["session_latency_ms_p50"] / speed["distilled"]["session_latency_ms_p50"]
        speed_rows = [
            [name, s["sentences_per_s"], s["latency_ms_p50"], s["latency_ms_p95"], s["session_latency_ms_p50"]]
            for name, s in speed.items()
        ]
        header = ["SavedModel", "sentences/s (batch 32)", "batch-1 p50 ms", "batch-1 p95 ms", "p50 ms, TF1 session"]
        results["tables"].append(print_table(header, speed_rows))
        print(
            f"student / teacher: {ratio:.2f}x sentences/s, {latency_ratio:.2f}x lower batch-1 p50 latency "
            f"({session_ratio:.2f}x through a TF1 session)"
        )
        results["tables"].append(
            print_table(
                ["training step, batch of 32", "ms (median)", "vs student alone"],
                [[name, ms, ms / cost["student alone"]] for name, ms in cost.items()],
            )
        )
        results |= {
            "serving": speed,
            "student_over_teacher_sentences_per_s": ratio,
            "teacher_over_student_latency_p50": latency_ratio,
            "teacher_over_student_session_latency_p50": session_ratio,
            "step_ms": cost,
        }
    default = result_file(f"distill_{FLAGS.corpus}", f"seed{FLAGS.seed}")
    write_json(default if FLAGS.json is None else FLAGS.json, results)


if __name__ == "__main__":
    app.run(main)
