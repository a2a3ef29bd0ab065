"""Epoch time and peak memory of `python -m kner.train` against training-set size.

For each size, the first N sentences of People's Daily train (read leniently)
are trained for one epoch (`--epochs`) with flags/tiny.cfg (2-layer/128-hidden, CRF head,
batch 32), no dev set, in a fresh model_dir. Epoch time is the trainer's own
progress-bar time (first step's tracing included); wall time is the whole
command; peak memory is the command's `ru_maxrss` (from `os.wait4`). A least-
squares line through (sentences, epoch seconds) gives the time per 1,000
sentences and the fixed part.

    PYTHONPATH=. .venv/bin/python bench/scaling.py   # -> bench/results/scaling.json
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from absl import app, flags
from common import JSON_HELP, ROOT, SHARED, machine, print_table, subset, write_json

FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["1000", "5000", "10000", "50000"], "Training-set sizes (sentences).")
flags.DEFINE_integer("epochs", 1, "Epochs per run (epoch time: their mean).")
flags.DEFINE_string("work_dir", "runs/bench_scaling", "Scratch space.")
flags.DEFINE_string("json", "bench/results/scaling.json", JSON_HELP + "this.")

EPOCH = re.compile(r"^(\d+)/\1 - (\d+)s - ", re.M)


def train_one_epoch(train: Path, model_dir: Path) -> dict:
    command = [
        sys.executable,
        "-m",
        "kner.train",
        "--flagfile=flags/tiny.cfg",
        f"--train_file={train}",
        "--dev_file=",
        "--lenient",
        f"--model_dir={model_dir}",
        f"--epochs={FLAGS.epochs}",
    ]
    shutil.rmtree(model_dir, ignore_errors=True)
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if status:
        raise RuntimeError(f"{' '.join(command)} failed with status {status}")
    steps, seconds = EPOCH.findall(output)[-1]
    return {
        "steps": int(steps),
        "epoch_seconds": int(seconds),
        "wall_seconds": wall,
        "peak_rss_mib": usage.ru_maxrss / 1024,
    }


def main(argv) -> None:
    del argv
    facts = machine()
    work_dir = Path(FLAGS.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for size in map(int, FLAGS.sizes):
        train = subset(SHARED / "peoples_daily" / "train.txt", size, work_dir)
        row = {"sentences": size, **train_one_epoch(train, work_dir / "model")}
        print(row, flush=True)
        rows.append(row)
    sentences = np.array([r["sentences"] for r in rows], float)
    seconds = np.array([r["epoch_seconds"] for r in rows], float)
    slope, intercept = np.polyfit(sentences, seconds, 1) if len(rows) > 1 else (seconds[0] / sentences[0], 0.0)
    memory = [r["peak_rss_mib"] for r in rows]
    fit = {
        "seconds_per_1k_sentences": 1000 * slope,
        "fixed_seconds": intercept,
        "max_relative_residual": float(np.max(np.abs(seconds - (slope * sentences + intercept)) / seconds)),
        "peak_rss_mib_range": [min(memory), max(memory)],
    }
    print(f"\nPeople's Daily, 2L/128 CRF, {FLAGS.epochs} epoch(s), batch 32; load {facts['loadavg_at_start']}")
    header = ["sentences", "steps", "epoch s", "s per 1k sentences", "wall s", "peak RSS MiB"]
    table = print_table(
        header,
        [
            [
                r["sentences"],
                r["steps"],
                r["epoch_seconds"],
                1000 * r["epoch_seconds"] / r["sentences"],
                r["wall_seconds"],
                r["peak_rss_mib"],
            ]
            for r in rows
        ],
    )
    print(
        f"fit: {fit['seconds_per_1k_sentences']:.1f} s per 1k sentences + {fit['fixed_seconds']:.1f} s "
        f"(largest residual {fit['max_relative_residual']:.0%}); peak RSS {min(memory):.0f}-{max(memory):.0f} MiB"
    )
    write_json(FLAGS.json, {"machine": facts, "epochs": FLAGS.epochs, "rows": rows, "fit": fit, "table": table})


if __name__ == "__main__":
    app.run(main)
