"""`python -m kner.distill`: bad teachers and labels are one-line errors.
flags/distill_demo.cfg end to end (a demo teacher, a 1-layer/64 student, raw
text, export, predict) runs and is checked in tests/test_docs.py
(tests/docs_outcomes.py), as docs/distillation.md gives it."""

import subprocess
import sys

import pytest
from tagger_dirs import build_model_dir
from train_runs import REPO, child_env

from kner.data.corpus import Sentence, write_cluener
from kner.data.spans import Span

pytestmark = pytest.mark.slow


def run(module: str, *args: str) -> subprocess.CompletedProcess:
    env = {**child_env(), "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-m", module, *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=600)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """The README demo's model (flags/demo.cfg), one epoch: the refusals
    below need its labels and head, not its skill."""
    model_dir = tmp_path_factory.mktemp("distill") / "teacher"
    trained = run("kner.train", "--flagfile=flags/demo.cfg", f"--model_dir={model_dir}", "--export_dir=", "--epochs=1")
    assert trained.returncode == 0, trained.stderr[-2000:]
    return model_dir


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
