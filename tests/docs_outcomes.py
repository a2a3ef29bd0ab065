"""What the docs' demo commands must have made, checked in the docs' workspace
right after their page ran (tests/test_docs.py): the demos learn, export and
predict. The commands run once, as the pages give them, instead of again in
a test of their own.

Each check takes the workspace (a checkout whose runs/ the page wrote) and the
page's standard output.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from train_runs import read_scalars


def _report(workspace: Path, run: str) -> dict:
    return json.loads((workspace / "runs" / run / "eval_report.json").read_text())


def _entities(jsonl: Path) -> list[set[tuple[str, str]]]:
    lines = jsonl.read_text(encoding="utf-8").splitlines()
    return [{(e["type"], e["text"]) for e in json.loads(line)["entities"]} for line in lines]


def readme(workspace: Path, stdout: str) -> None:
    """flags/demo.cfg learns (the templated demo data is easy; a broken
    pipeline scores ~0), exports, and the export finds the sample's entities."""
    assert _report(workspace, "demo")["micro"]["f1"] > 0.9
    assert (workspace / "runs/demo/export/1/saved_model.pb").is_file()
    predictions = workspace / "runs/demo/predictions.jsonl"
    texts = (workspace / "data/demo/test.txt").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["text"] for line in predictions.read_text(encoding="utf-8").splitlines()] == texts
    assert {("name", "王芳"), ("company", "比亚迪"), ("scene", "故宫")} <= set().union(*_entities(predictions))


def distillation(workspace: Path, stdout: str) -> None:
    """flags/distill_demo.cfg: the README's demo teaches a 1-layer/64 student
    on raw text, every loss term in TensorBoard, and the student's export
    predicts."""
    assert re.search(r"teacher \S*runs/demo: 2 layer\(s\), hidden 128, crf head", stdout), stdout[-3000:]
    assert "1 layer(s), hidden 64" in stdout
    assert "unlabelled text: 1 file(s), 8 texts per step" in stdout
    assert "loss: soft 1.0 (T=8.0), hard 1.0" in stdout  # the flagfile: TextBrewer's, no T**2
    assert re.search(r"^export +\S*runs/distill_demo/export/1  \(TF Serving SavedModel\)$", stdout, re.M)  # says where
    assert _report(workspace, "distill_demo")["micro"]["f1"] > 0.5  # an untaught student scores ~0
    from kner.models.artifacts import load_tagger

    model, _, settings = load_tagger(workspace / "runs/distill_demo")  # a normal model_dir
    assert model.backbone.num_layers == 1 and settings["head"] == "crf"

    # Each loss term, unweighted, beside the weighted total (every weight is 1 in the flagfile).
    scalars = read_scalars(workspace / "runs/distill_demo/train")
    terms = [scalars[f"loss_terms/{term}"] for term in ("soft", "hard", "hidden")]
    assert len(scalars["loss"]) >= 3 and all([s for s, _ in t] == [s for s, _ in scalars["loss"]] for t in terms)
    values = np.array([[v for _, v in t] for t in terms])
    assert np.isfinite(values).all() and (values > 0).all()
    np.testing.assert_allclose(values.sum(axis=0), [v for _, v in scalars["loss"]], rtol=1e-5)
    taught = read_scalars(workspace / "runs/demo/train")  # kner.train: the loss, no terms
    assert taught["loss"] and not [tag for tag in taught if tag.startswith("loss_terms/")]

    found = _entities(workspace / "runs/distill_demo/predictions.jsonl")
    assert len(found) == 3 and any(found)


def heads(workspace: Path, stdout: str) -> None:
    """flags/cmeee_demo.cfg: nested CMeEE-format data, GlobalPointer, per-type
    span scores in TensorBoard, an export that decodes spans in the graph,
    CMeEE in and out of kner.predict; flags/span_fgm_demo.cfg: the span head
    with FGM learns, and its export predicts."""
    report = _report(workspace, "demo_nested")
    assert report["micro"]["f1"] > 0.9 and report["per_type"]["bod"]["support"] == 40  # bod inside sym, all counted
    assert "seqeval" not in report  # a pair head has no tags
    dev = read_scalars(workspace / "runs/demo_nested/dev")
    assert {"overall/f1", "bod/f1", "sym/precision", "sym/recall"} <= dev.keys()
    best_step = report["epoch"] * 10  # 160 sentences / 16 an epoch
    assert dict(dev["bod/f1"])[best_step] == pytest.approx(report["per_type"]["bod"]["f1"], abs=1e-6)
    assert re.search(r"^micro\s+[\d.]+\s+[\d.]+\s+(0\.9\d+|1\.0+)\s+182$", stdout, re.M), stdout[-3000:]
    records = json.loads((workspace / "runs/demo_nested/dev_predicted.json").read_text(encoding="utf-8"))
    nested = [
        (a["entity"], b["entity"])
        for r in records
        for a in r["entities"]
        for b in r["entities"]
        if a != b and a["start_idx"] <= b["start_idx"] and b["end_idx"] <= a["end_idx"]
    ]
    assert len(nested) > 30

    assert "FGM on the word embeddings, epsilon 1 (2 forward-backward passes a step)" in stdout
    span = _report(workspace, "demo_span_fgm")
    assert span["micro"]["f1"] > 0.9 and "seqeval" not in span  # the span head has no tags
    from kner.serving.predictor import Predictor

    texts = (workspace / "data/demo/test.txt").read_text(encoding="utf-8").splitlines()
    predicted = Predictor.from_dir(workspace / "runs/demo_span_fgm/export").predict(texts)
    found = {(entity.type, entity.text) for entities in predicted for entity in entities}
    assert {("name", "王芳"), ("company", "比亚迪")} <= found


CHECKS: dict[str, Callable[[Path, str], None]] = {
    "README.md": readme,
    "docs/distillation.md": distillation,
    "docs/heads.md": heads,
}
