"""`python -m kner.distill` end to end: flags/distill_demo.cfg on data/demo
(a demo teacher, a 1-layer/64 student, raw text), then export and predict
on the student; bad teachers and labels are one-line errors."""

import json
import subprocess
import sys

import numpy as np
import pytest
from tagger_dirs import build_model_dir
from train_runs import REPO, child_env, read_scalars

from kner.data.corpus import Sentence, write_cluener
from kner.data.spans import Span
from kner.models.artifacts import load_tagger

pytestmark = pytest.mark.slow


def run(module: str, *args: str) -> subprocess.CompletedProcess:
    env = {**child_env(), "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-m", module, *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=600)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """The README demo's model (flags/demo.cfg), 6 epochs."""
    model_dir = tmp_path_factory.mktemp("distill") / "teacher"
    trained = run("kner.train", "--flagfile=flags/demo.cfg", f"--model_dir={model_dir}", "--export_dir=", "--epochs=6")
    assert trained.returncode == 0, trained.stderr[-2000:]
    return model_dir


def test_distill_demo_trains_a_student_that_exports_and_predicts(teacher, tmp_path):
    student, export = tmp_path / "student", tmp_path / "export"
    distilled = run(
        "kner.distill", "--flagfile=flags/distill_demo.cfg", f"--teacher_dir={teacher}", f"--model_dir={student}",
        f"--export_dir={export}",
    )  # fmt: skip
    assert distilled.returncode == 0, distilled.stderr[-3000:]
    assert f"teacher {teacher}: 2 layer(s), hidden 128, crf head" in distilled.stdout
    assert "student" in distilled.stdout and "1 layer(s), hidden 64" in distilled.stdout
    assert "unlabelled text: 1 file(s), 8 texts per step" in distilled.stdout
    assert "loss: soft 1.0 (T=8.0), hard 1.0" in distilled.stdout  # the flagfile: TextBrewer's, no T**2
    assert f"export        {export / '1'}  (TF Serving SavedModel)\n" in distilled.stdout  # says where
    report = json.loads((student / "eval_report.json").read_text())
    assert report["micro"]["f1"] > 0.5  # 0.86 when written; an untaught student scores ~0
    model, _, settings = load_tagger(student)  # a normal model_dir
    assert model.backbone.num_layers == 1 and settings["head"] == "crf"

    # TensorBoard: each loss term, unweighted, beside the weighted total (every weight is 1 in the flagfile).
    scalars = read_scalars(student / "train")
    terms = [scalars[f"loss_terms/{term}"] for term in ("soft", "hard", "hidden")]
    assert len(scalars["loss"]) >= 3 and all([s for s, _ in t] == [s for s, _ in scalars["loss"]] for t in terms)
    values = np.array([[v for _, v in t] for t in terms])
    assert np.isfinite(values).all() and (values > 0).all()
    np.testing.assert_allclose(values.sum(axis=0), [v for _, v in scalars["loss"]], rtol=1e-5)
    taught = read_scalars(teacher / "train")  # kner.train: the loss, no terms
    assert taught["loss"] and not [tag for tag in taught if tag.startswith("loss_terms/")]

    output = tmp_path / "predictions.jsonl"
    predicted = run(
        "kner.predict", f"--export_dir={export}", "--input=data/demo/test.txt", f"--output={output}",
        "--output_format=jsonl",
    )  # fmt: skip
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    lines = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 3 and sum(len(line["entities"]) for line in lines) > 0


def test_another_tag_scheme_or_entity_type_than_the_teachers_is_one_error_line(teacher, tmp_path):
    common = ["--flagfile=flags/distill_demo.cfg", f"--teacher_dir={teacher}", f"--model_dir={tmp_path / 's'}"]
    scheme = run("kner.distill", *common, "--tag_scheme=bioes")
    assert scheme.returncode == 2
    assert scheme.stderr.strip().splitlines()[-1].startswith(f"error: {teacher / 'labels.json'}: the teacher tags in")
    other = tmp_path / "other.json"
    write_cluener(other, [Sentence("他在联合国工作", [Span(2, 4, "org")])])
    types = run("kner.distill", *common, f"--train_file={other}")
    assert types.returncode == 2
    last = types.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {other}: entity types ['org'] are not in the teacher's labels"), last


def test_help_lists_the_distillation_and_training_flags():
    shown = run("kner.distill", "--help")
    assert shown.returncode == 0 and "Traceback" not in shown.stderr
    assert shown.stdout.startswith("Distils")
    flags = ("teacher_dir", "unlabeled_files", "temperature", "soft_loss_t_squared", "layer_map", "hard_loss_weight")
    for flag in (*flags, "learning_rate"):
        assert f"--{flag}" in shown.stdout, flag


def test_a_pair_head_is_refused_in_one_line(teacher, tmp_path):
    """Task distillation matches distributions per character, which a
    GlobalPointer does not have: the student's head, and a pair-head teacher."""
    common = ["--flagfile=flags/distill_demo.cfg", f"--teacher_dir={teacher}", f"--model_dir={tmp_path / 's'}"]
    student = run("kner.distill", *common, "--head=global_pointer")
    assert student.returncode == 2 and "Traceback" not in student.stderr
    errors = [line for line in student.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: --head=global_pointer: task distillation cannot teach this head; it takes crf, softmax "
        "(see python -m kner.distill --help)"
    ]
    pair_teacher = build_model_dir(tmp_path / "gp_teacher", head="global_pointer")  # refused before its labels matter
    common[1] = f"--teacher_dir={pair_teacher}"
    refused = run("kner.distill", *common, "--train_file=data/demo_nested/train.json", "--dev_file=")
    assert refused.returncode == 2
    refusal = "a global_pointer teacher cannot teach: task distillation takes the crf, softmax heads"
    assert f"error: --teacher_dir={pair_teacher}: {refusal}" in refused.stderr
