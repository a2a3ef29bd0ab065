"""The README's first command, end to end: train on data/demo with
flags/demo.cfg (evaluating every epoch), export, then predict from the export."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from train_runs import read_scalars

REPO = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=600)


@pytest.mark.slow
def test_demo_trains_evaluates_exports_and_predicts(tmp_path):
    model_dir, export_dir = tmp_path / "demo", tmp_path / "demo" / "export"
    trained = run(
        "-m", "kner.train", "--flagfile=flags/demo.cfg", f"--model_dir={model_dir}", f"--export_dir={export_dir}"
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    report = json.loads((model_dir / "eval_report.json").read_text())
    assert report["micro"]["f1"] > 0.9  # the templated demo data is easy; a broken pipeline scores ~0
    assert (export_dir / "1" / "saved_model.pb").exists()

    output = tmp_path / "predictions.jsonl"
    predicted = run(
        "-m", "kner.predict", f"--export_dir={export_dir}", "--input=data/demo/test.txt", f"--output={output}",
        "--output_format=jsonl",
    )  # fmt: skip
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    lines = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    texts = (REPO / "data/demo/test.txt").read_text(encoding="utf-8").splitlines()
    assert [line["text"] for line in lines] == texts
    found = {(e["type"], e["text"]) for line in lines for e in line["entities"]}
    assert {("name", "王芳"), ("company", "比亚迪"), ("scene", "故宫")} <= found


@pytest.mark.slow
def test_nested_demo_trains_global_pointer_exports_and_predicts_cmeee(tmp_path):
    """flags/cmeee_demo.cfg: nested CMeEE-format data, GlobalPointer, an export
    that decodes spans in the graph, and CMeEE in and out of kner.predict."""
    model_dir, export_dir = tmp_path / "nested", tmp_path / "nested" / "export"
    trained = run(
        "-m", "kner.train", "--flagfile=flags/cmeee_demo.cfg", f"--model_dir={model_dir}", f"--export_dir={export_dir}"
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-2000:]
    report = json.loads((model_dir / "eval_report.json").read_text())
    assert report["micro"]["f1"] > 0.9 and report["per_type"]["bod"]["support"] == 40  # bod inside sym, all counted
    assert "seqeval" not in report  # a pair head has no tags
    dev = read_scalars(model_dir / "dev")  # TensorBoard: the span scores, per type
    assert {"overall/f1", "bod/f1", "sym/precision", "sym/recall"} <= dev.keys()
    best_step = report["epoch"] * 10  # 160 sentences / 16 an epoch
    assert dict(dev["bod/f1"])[best_step] == pytest.approx(report["per_type"]["bod"]["f1"], abs=1e-6)
    output = tmp_path / "predictions.json"
    predicted = run(
        "-m", "kner.predict", f"--export_dir={export_dir}", "--input=data/demo_nested/dev.json", f"--output={output}",
        "--output_format=cmeee",
    )  # fmt: skip
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    assert re.search(r"^micro\s+[\d.]+\s+[\d.]+\s+(0\.9\d+|1\.0+)\s+182$", predicted.stdout, re.M), predicted.stdout
    records = json.loads(output.read_text(encoding="utf-8"))
    nested = [
        (a["entity"], b["entity"])
        for r in records
        for a in r["entities"]
        for b in r["entities"]
        if a != b and a["start_idx"] <= b["start_idx"] and b["end_idx"] <= a["end_idx"]
    ]
    assert len(nested) > 30


# XLA compiles a step per padded batch length (multiples of 8): the demo's
# sentences cut at 24 tokens give 3 lengths instead of 7, and the runs below
# test bf16, XLA and resuming, not the long sentences.
XLA_SHAPES = "--max_seq_length=24"


@pytest.mark.slow
def test_global_pointer_trains_in_bfloat16_under_xla_and_resumes(tmp_path):
    common = ["-m", "kner.train", "--flagfile=flags/cmeee_demo.cfg", f"--model_dir={tmp_path / 'run'}", "--export_dir="]
    common += [XLA_SHAPES]
    first = run(*common, "--epochs=1", "--mixed_precision=mixed_bfloat16", "--jit_compile")
    assert first.returncode == 0, first.stderr[-2000:]
    report = json.loads((tmp_path / "run" / "eval_report.json").read_text())
    assert report["loss"] > 0 and report["epoch"] == 1
    second = run(*common, "--epochs=2", "--mixed_precision=mixed_bfloat16", "--jit_compile")
    assert second.returncode == 0, second.stderr[-2000:]
    assert "resumed from" in second.stderr and "ckpt-10" in second.stderr  # 160 sentences / 16 an epoch
    assert "epoch 2/2" in second.stdout and "epoch 1/2" not in second.stdout


@pytest.mark.slow
def test_span_fgm_demo_trains_exports_and_predicts(tmp_path):
    """flags/span_fgm_demo.cfg: the span head with FGM, evaluated every epoch,
    exported, and the export predicting."""
    model_dir, export_dir = tmp_path / "span", tmp_path / "span" / "export"
    trained = run(
        "-m", "kner.train", "--flagfile=flags/span_fgm_demo.cfg", f"--model_dir={model_dir}",
        f"--export_dir={export_dir}",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "FGM on the word embeddings, epsilon 1 (2 forward-backward passes a step)" in trained.stdout
    report = json.loads((model_dir / "eval_report.json").read_text())
    assert report["micro"]["f1"] > 0.9 and "seqeval" not in report  # the span head has no tags
    output = tmp_path / "predictions.jsonl"
    predicted = run(
        "-m", "kner.predict", f"--export_dir={export_dir}", "--input=data/demo/test.txt", f"--output={output}",
        "--output_format=jsonl",
    )  # fmt: skip
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    found = {(e["type"], e["text"]) for line in output.read_text(encoding="utf-8").splitlines()
             for e in json.loads(line)["entities"]}  # fmt: skip
    assert {("name", "王芳"), ("company", "比亚迪")} <= found


@pytest.mark.slow
def test_span_with_pgd_trains_in_bfloat16_under_xla_and_resumes(tmp_path):
    common = ["-m", "kner.train", "--flagfile=flags/span_fgm_demo.cfg", f"--model_dir={tmp_path / 'run'}"]
    common += ["--export_dir=", "--adversarial=pgd", "--mixed_precision=mixed_bfloat16", "--jit_compile", XLA_SHAPES]
    first = run(*common, "--epochs=1")
    assert first.returncode == 0, first.stderr[-2000:]
    assert "PGD on the word embeddings, 3 steps of 0.3 within epsilon 1" in first.stdout
    assert json.loads((tmp_path / "run" / "eval_report.json").read_text())["epoch"] == 1
    second = run(*common, "--epochs=2")
    assert second.returncode == 0, second.stderr[-2000:]
    assert "resumed from" in second.stderr and "ckpt-10" in second.stderr  # 160 sentences / 16 an epoch
    assert "epoch 2/2" in second.stdout and "epoch 1/2" not in second.stdout
