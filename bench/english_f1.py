"""WNUT-17 dev F1 of a 2-layer/128-hidden BERT trained from scratch on English
with WordPiece (flags/english_cased.cfg), over seeds: the command users run,
once per seed, and each run's best dev epoch.

    PYTHONPATH=. .venv/bin/python bench/english_f1.py --seeds=1,2,3

From scratch, on 3,394 training sentences and an English vocab of 28,996
pieces, the model learns little: this measures the pipeline (sub-tokens,
labels on the first sub-token of each word, scores over words), not a
competitive score. Scores are `kner.metrics.evaluate`'s over words: exact
entity micro P/R/F1 (what CoNLL's `conlleval` counts) and seqeval's strict
F1 of the model's tags per word.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

from absl import app, flags
from common import JSON_HELP, ROOT, machine, print_table, result_file, write_json

FLAGS = flags.FLAGS
FLAGFILE = "flags/english_cased.cfg"
flags.DEFINE_list("seeds", ["1", "2", "3"], "Seeds, one training run each.")
flags.DEFINE_integer("epochs", None, "Epochs (default: the flagfile's).")
flags.DEFINE_string("work_dir", "runs/bench_english", "Each seed's model_dir goes under it.")
flags.DEFINE_string("json", result_file("english_f1"), JSON_HELP + result_file("english_f1"))


def train(seed: int) -> dict:
    """One run of `kner.train` (kept when finished: rerunning reads it back)."""
    model_dir = Path(FLAGS.work_dir) / f"seed_{seed}"
    command = [sys.executable, "-m", "kner.train", f"--flagfile={FLAGFILE}", f"--seed={seed}"]
    command.append(f"--model_dir={model_dir}")
    if FLAGS.epochs:
        command.append(f"--epochs={FLAGS.epochs}")
    subprocess.run(command, cwd=ROOT, check=True)
    report = json.loads((ROOT / model_dir / "eval_report.json").read_text())
    return {
        "seed": seed,
        "model_dir": str(model_dir),
        "best_epoch": report["epoch"],
        "micro": report["micro"],
        "seqeval_f1": report["seqeval"]["f1-score"],
        "per_type_f1": {name: scores["f1"] for name, scores in report["per_type"].items()},
    }


def main(argv):
    del argv
    runs = [train(int(seed)) for seed in FLAGS.seeds]
    rows = [
        [r["seed"], r["best_epoch"], r["micro"]["precision"], r["micro"]["recall"], r["micro"]["f1"], r["seqeval_f1"]]
        for r in runs
    ]
    print_table(["seed", "best epoch", "P", "R", "F1", "seqeval F1"], rows)
    f1 = [r["micro"]["f1"] for r in runs]
    summary = {"mean_f1": statistics.mean(f1), "stdev_f1": statistics.stdev(f1) if len(f1) > 1 else 0.0}
    print(f"dev micro F1 {summary['mean_f1']:.4f} +- {summary['stdev_f1']:.4f} over {len(f1)} seed(s)")
    command = f"python -m kner.train --flagfile={FLAGFILE} --seed=S"
    write_json(FLAGS.json, {"command": command, **summary, "runs": runs, "machine": machine()})


if __name__ == "__main__":
    app.run(main)
