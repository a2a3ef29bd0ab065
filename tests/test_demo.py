"""The README's first command, end to end: train on data/demo with
flags/demo.cfg (evaluating every epoch), export, then predict from the export."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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
