"""Draws the plots of bench/README.md from the current result files.

    python bench/plots.py                  # every plot, into bench/plots/
    python bench/plots.py --only=serving   # one of them

Reads `bench/results/*.json` (the current result of each table, written by
the other bench scripts) and writes one PNG per plot with matplotlib. It
needs neither TensorFlow nor PyTorch: run it in any environment with the
bench requirements (`requirements-bench.txt` pins matplotlib).
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PLOTS = ROOT / "bench" / "plots"
KNER, PEER, KNER_LIGHT, PEER_LIGHT = "#1f77b4", "#ff7f0e", "#9ecae9", "#ffbb78"


def read(name: str) -> dict:
    return json.loads((RESULTS / name).read_text(encoding="utf-8"))


def _f1(run: dict, side: str, head: str) -> float:
    return next(row["f1"] for row in run["rows"] if row["side"] == side and row["head"] == head)


def accuracy() -> plt.Figure:
    """Dev micro F1 of kner and the PyTorch reference, per corpus, size and
    head (softmax decoded by argmax on both sides, like for like)."""
    runs = read("accuracy.json")
    both = {  # label: (head, the run of the kner row, the run of the reference row)
        "CLUENER\n2L/128 CRF": ("crf", "cluener_2L_kner_grammar", "cluener_2L"),
        "CLUENER\n2L/128 softmax": ("softmax", "cluener_2L", "cluener_2L"),
        "CLUENER\n4L/256 CRF": ("crf", "cluener_4L_crf", "cluener_4L_crf"),
        "CLUENER\n4L/256 softmax": ("softmax", "cluener_4L_softmax_kner", "cluener_4L_softmax_reference"),
        "People's Daily\n2L/128 CRF": ("crf", "peoples_daily_2L_crf", "peoples_daily_2L_crf"),
        "People's Daily\n2L/128 softmax": (
            "softmax",
            "peoples_daily_2L_softmax_kner",
            "peoples_daily_2L_softmax_reference",
        ),
        "People's Daily\n4L/256 CRF": ("crf", "peoples_daily_4L", "peoples_daily_4L"),
        "People's Daily\n4L/256 softmax": ("softmax", "peoples_daily_4L", "peoples_daily_4L"),
    }
    rows = [(label, _f1(runs[k], "kner", head), _f1(runs[r], "torch", head)) for label, (head, k, r) in both.items()]
    figure, axes = plt.subplots(figsize=(10, 4.2))
    positions = range(len(rows))
    kner_bars = axes.bar([p - 0.2 for p in positions], [r[1] for r in rows], 0.4, color=KNER, label="kner")
    peer_bars = axes.bar([p + 0.2 for p in positions], [r[2] for r in rows], 0.4, color=PEER, label="HF + PyTorch")
    for bars in (kner_bars, peer_bars):
        axes.bar_label(bars, fmt="%.3f", fontsize=7, padding=2)
    axes.set_xticks(list(positions), [r[0] for r in rows], fontsize=8)
    axes.set_ylabel("dev micro F1 (exact spans)")
    axes.set_ylim(0, 0.75)
    axes.set_title("Same model, recipe and batches, trained from scratch: kner against Hugging Face + PyTorch")
    axes.legend(loc="upper right")
    return figure


def train_speed() -> plt.Figure:
    """Training-step examples/s of kner over PyTorch, per model size and workload."""
    rows = [row for run in read("train_speed.json").values() for row in run["rows"]]
    speed = {(r["size"], r["workload"], r["side"]): r["examples_per_s"] for r in rows}
    cases = sorted(
        {(r["size"], r["workload"]) for r in rows}, key=lambda c: (c[1] != "len128", int(c[0].split("L")[0]))
    )
    ratios = [  # label, numerator side, denominator side, colour
        ("kner float32 / PyTorch float32", "kner", "torch", KNER_LIGHT),
        ("kner bf16 / PyTorch float32", "kner_bf16", "torch", KNER),
        ("kner bf16 / PyTorch bf16 autocast", "kner_bf16", "torch_bf16", "#08519c"),
    ]
    figure, axes = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(ratios)
    for i, (label, top, bottom, colour) in enumerate(ratios):
        values = [speed[(*case, top)] / speed[(*case, bottom)] for case in cases]
        bars = axes.bar([p + (i - 1) * width for p in range(len(cases))], values, width, color=colour, label=label)
        axes.bar_label(bars, fmt="%.2fx", fontsize=7, padding=2)
    names = {"len128": "128 tokens", "cluener": "CLUENER batches"}
    axes.set_xticks(range(len(cases)), [f"{size}\n{names[workload]}" for size, workload in cases], fontsize=8)
    axes.axhline(1.0, color="grey", linewidth=0.8)
    axes.set_ylabel("examples/s, ratio")
    axes.set_ylim(0, 2.1)
    axes.set_title("Training step (batch 32), kner over PyTorch, by model size")
    axes.legend(loc="upper left", fontsize=8)
    return figure


SERVING_CASES = [  # case in inference.json, label, colour
    ("kner SavedModel float32", "SavedModel float32", KNER_LIGHT),
    ("kner SavedModel bfloat16", "SavedModel bf16", KNER),
    ("kner.Predictor (float32)", "kner.Predictor", "#08519c"),
    ("HF pipeline bf16 autocast", "HF pipeline bf16 autocast", PEER_LIGHT),
]


def _serving_runs() -> dict:
    runs = read("inference.json")
    return {**runs["2L_4L"]["runs"], **runs["12L"]["runs"]}


def serving() -> plt.Figure:
    """Sentences/s of raw text to entities, over the HF pipeline in float32, per size."""
    runs = _serving_runs()
    sizes = list(runs)
    figure, axes = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(SERVING_CASES)
    for i, (case, label, colour) in enumerate(SERVING_CASES):
        values = [
            max(runs[size]["cases"][case]["sentences_per_s"])
            / max(runs[size]["cases"]["HF pipeline float32"]["sentences_per_s"])
            for size in sizes
        ]
        positions = [p + (i - 1.5) * width for p in range(len(sizes))]
        axes.bar_label(axes.bar(positions, values, width, color=colour, label=label), fmt="%.2fx", fontsize=7)
    axes.axhline(1.0, color="grey", linewidth=0.8)
    axes.set_xticks(range(len(sizes)), sizes)
    axes.set_ylabel("sentences/s over the HF pipeline (float32)")
    axes.set_title("Serving raw CLUENER dev text, batch 32: kner over Hugging Face's pipeline")
    axes.legend(fontsize=8)
    return figure


def latency() -> plt.Figure:
    """The distribution of batch-1 latency (one CLUENER dev text a call), per size."""
    runs = _serving_runs()
    cases = [
        ("kner SavedModel float32", "kner f32", KNER_LIGHT),
        ("kner SavedModel bfloat16", "kner bf16", KNER),
        ("HF pipeline float32", "HF f32", PEER),
        ("HF pipeline bf16 autocast", "HF bf16", PEER_LIGHT),
    ]
    figure, all_axes = plt.subplots(1, len(runs), figsize=(11, 3.8))
    for axes, (size, run) in zip(all_axes, runs.items(), strict=True):
        samples = [run["cases"][case]["latency_ms"] for case, _, _ in cases]
        boxes = axes.boxplot(samples, whis=(5, 95), showfliers=False, patch_artist=True, widths=0.6)
        for box, (_, _, colour) in zip(boxes["boxes"], cases, strict=True):
            box.set_facecolor(colour)
        for i, sample in enumerate(samples, 1):
            axes.annotate(f"{statistics.median(sample):.1f}", (i, statistics.median(sample)), fontsize=7, ha="center")
        axes.set_xticks(range(1, len(cases) + 1), [label for _, label, _ in cases], fontsize=8)
        axes.set_title(f"{size} ({len(samples[0])} calls)", fontsize=9)
        axes.set_ylim(bottom=0)
    all_axes[0].set_ylabel("ms per call (box: quartiles, whiskers: 5th-95th percentile)", fontsize=8)
    figure.suptitle("Batch-1 latency, raw text to entities (median printed)")
    return figure


def distillation() -> plt.Figure:
    """Dev F1 of the teacher, the student alone and the distilled student."""
    cluener, daily = read("distill_cluener.json"), read("distill_peoples_daily.json")
    groups = [  # label, runs of one seed, the distilled run's name
        ("CLUENER, seed 42", cluener["seed42"]["runs"], "distilled_hard_soft64"),
        ("CLUENER, seed 7", cluener["seed7"]["runs"], "distilled_hard_soft64"),
        ("People's Daily 20k, seed 42", daily["seed42"]["runs"], "distilled"),
        ("People's Daily 20k, seed 7", daily["seed7"]["runs"], "distilled"),
    ]
    bars = [("teacher 4L/256", "teacher", PEER), ("student 2L/128 alone", "student_alone", KNER_LIGHT)]
    figure, axes = plt.subplots(figsize=(9, 4))
    for i, (label, key, colour) in enumerate([*bars, ("student 2L/128 distilled", None, KNER)]):
        values = [runs[key or distilled]["f1"] for _, runs, distilled in groups]
        positions = [p + (i - 1) * 0.27 for p in range(len(groups))]
        axes.bar_label(axes.bar(positions, values, 0.27, color=colour, label=label), fmt="%.3f", fontsize=7)
    axes.set_xticks(range(len(groups)), [g[0] for g in groups], fontsize=8)
    axes.set_ylim(0.4, 0.72)
    axes.set_ylabel("dev micro F1")
    axes.set_title("Distillation: the student recovers about half of the gap to its teacher")
    axes.legend(fontsize=8, loc="upper left")
    return figure


ORT_SIDES = [  # label, the configurations of ort_serving.json it takes the best of (those timed), colour
    ("kner float32", ["kner f32 session", "kner f32 signature", "kner f32 session split"], KNER_LIGHT),
    ("kner bf16", ["kner bf16 session", "kner bf16 signature"], KNER),
    (
        "kner int8",
        ["kner int8 session", "kner int8 signature", "kner int8 session split", "kner int8 tp2 session split"],
        "#08519c",
    ),
    ("kner XLA", ["kner xla session", "kner xla signature", "kner xla session split"], "#41ab5d"),
    ("ORT fp32", [f"ORT fp32 spin {spin}{split}" for spin in ("on", "off") for split in ("", " split")], PEER),
    ("ORT int8", [f"ORT int8 spin {spin}{split}" for spin in ("on", "off") for split in ("", " split")], PEER_LIGHT),
]


def ort() -> plt.Figure:
    """kner's exports against ONNX Runtime: batch-1 p50 and batch-32
    sentences/s per size, each side's best configuration at the same thread
    count, one row of panels per thread count."""
    runs = read("ort_serving.json")["runs"]
    sizes = list(runs)
    threads = list(next(iter(runs.values()))["timing"])
    figure, all_axes = plt.subplots(len(threads), 2, figsize=(11, 3.6 * len(threads)), squeeze=False)
    width = 0.8 / len(ORT_SIDES)
    for row, count in zip(all_axes, threads, strict=True):
        panels = ((row[0], "1", "p50_ms", min), (row[1], "32", "best_sentences_per_s", max))
        for i, (label, cases, colour) in enumerate(ORT_SIDES):
            for axes, batch, key, pick in panels:
                timing = [runs[size]["timing"][count]["cases"] for size in sizes]
                values = [pick(timed[case][batch][key] for case in cases if case in timed) for timed in timing]
                positions = [p + (i - (len(ORT_SIDES) - 1) / 2) * width for p in range(len(sizes))]
                bars = axes.bar(positions, values, width, color=colour, label=label)
                axes.bar_label(bars, fmt=lambda v: f"{v:,.0f}" if v >= 100 else f"{v:.3g}", fontsize=6)
        titles = (f"{count} thread(s), batch 1: p50 ms per call", f"{count} thread(s), batch 32: sentences/s")
        for axes, title in zip(row, titles, strict=True):
            axes.set_xticks(range(len(sizes)), sizes)
            axes.set_yscale("log")
            axes.set_title(title, fontsize=9)
    all_axes[0][0].legend(fontsize=7)
    figure.suptitle("Raw CLUENER dev text to entities: kner's SavedModel against ONNX Runtime, each side's best")
    figure.tight_layout()
    return figure


PLOTS_BY_NAME: dict[str, Callable[[], plt.Figure]] = {
    "accuracy": accuracy,
    "train_speed": train_speed,
    "serving": serving,
    "latency": latency,
    "distillation": distillation,
    "ort": ort,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=list(PLOTS_BY_NAME), help="draw this plot only")
    args = parser.parse_args()
    PLOTS.mkdir(exist_ok=True)
    for name, draw in PLOTS_BY_NAME.items():
        if args.only and name != args.only:
            continue
        figure = draw()
        figure.tight_layout()
        path = PLOTS / f"{name}.png"
        figure.savefig(path, dpi=110, metadata={"Software": None})  # no version stamp: same data, same bytes
        plt.close(figure)
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
