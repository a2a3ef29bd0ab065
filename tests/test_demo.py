"""The demo flagfiles under bfloat16, XLA and resuming. The demos as the
docs give them (train, evaluate, export, predict) run and are checked in
tests/test_docs.py (tests/docs_outcomes.py)."""

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
