"""kner/cli.py: TensorFlow's start-up notices hidden, everything else shown."""

import subprocess
import sys

import pytest
from train_runs import REPO, child_env

from kner import cli

NOTICE = "E0000 00:00:1795996956.231319    9808 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)"
REAL = "E0000 00:00:1795996956.231319    9808 op_kernel.cc:1841] OP_REQUIRES failed: out of memory"


@pytest.mark.parametrize(
    "argv, level",
    [([], 0), (["--x=1", "--verbosity=1"], 1), (["-v", "2"], 2), (["-v=1"], 1), (["--verbosity", "x"], 0)],
)
def test_verbosity_from_the_command_line(argv, level):
    assert cli.verbosity(["prog", *argv]) == level


def run_filtered(argv: list[str], then: str) -> subprocess.CompletedProcess:
    script = (
        "import os, sys\nfrom kner import cli\n"
        f"cli.quiet_startup({argv!r})\n"
        f"os.write(2, b'{NOTICE}\\n'); print('python line', file=sys.stderr); os.write(2, b'{REAL}\\n')\n{then}"
    )
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=child_env(), cwd=REPO)


def test_startup_notices_hidden_real_errors_shown():
    result = run_filtered([], "")
    assert (result.returncode, result.stderr) == (0, f"python line\n{REAL}\n")


def test_verbosity_1_shows_the_notices():
    result = run_filtered(["-v", "1"], "")
    assert result.stderr == f"{NOTICE}\npython line\n{REAL}\n"


def test_last_lines_before_a_crash_still_arrive():
    result = run_filtered([], "os.write(2, b'last words\\n'); os.abort()")
    assert result.returncode < 0 and result.stderr == f"python line\n{REAL}\nlast words\n"


@pytest.mark.slow
def test_cli_start_up_is_quiet_and_a_usage_error_is_one_line():
    command = [sys.executable, "-m", "kner.checkpoint"]
    result = subprocess.run(command, capture_output=True, text=True, env=child_env(), cwd=REPO)
    assert result.returncode == 2
    assert result.stderr == "error: expected the command: inspect PATH (see python -m kner.checkpoint --help)\n"


def test_tagging_heads_keep_outer_spans_and_refuse_crossing_ones(caplog):
    from kner.data.corpus import Sentence
    from kner.data.spans import Span
    from kner.errors import InputError

    nested = Sentence("肺内病变", [Span(0, 3, "sym"), Span(0, 1, "bod")], path="train.json", line=3)
    flat = Sentence("肺", [Span(0, 0, "bod")], path="train.json", line=4)
    assert cli.check_spans([flat, nested, nested], "train.json", "crf") == [flat, nested, nested]
    assert "train.json: 2 sentences have an entity nested in another (first at line 3)" in caplog.text
    assert "the crf head keeps only the outer one" in caplog.text
    crossing = Sentence("右肺门增大", [Span(0, 2, "bod"), Span(1, 4, "sym")], path="train.json", line=9)
    with pytest.raises(InputError) as caught:
        cli.check_spans([flat, crossing], "train.json", "softmax")
    assert str(caught.value).startswith(
        "train.json:9: spans [0, 2] bod '右肺门' and [1, 4] sym '肺门增大' cross: the softmax head takes flat "
        "entities only; the "
    )
    assert str(caught.value).endswith("heads take them (--head), --lenient drops the later span")
    same = Sentence("右肺门", [Span(0, 2, "bod"), Span(0, 2, "sym")], path="dev.json", line=1)
    with pytest.raises(InputError, match="cover the same characters: the crf head"):
        cli.check_spans([same], "dev.json", "crf")
    kept = cli.check_spans([crossing, same, nested], "dev.json", "crf", lenient=True)
    assert [s.spans for s in kept] == [[Span(0, 2, "bod")], [Span(0, 2, "bod")], nested.spans]
    assert "dev.json: dropped 2 spans crossing another or sharing its extent (first at line 9)" in caplog.text
    assert cli.check_spans([crossing], "dev.json", "global_pointer") == [crossing]


def test_head_flags_a_head_does_not_take_are_named():
    assert cli.head_flags_ignored("span") == {
        "head_size": "the span head does not take it",
        "decode_threshold": "the span head does not take it",
        "tag_scheme": "the span head tags no sequence",
    }
    assert cli.head_flags_ignored("crf")["label_smoothing"] == "the crf head does not take it"
    assert "label_smoothing" in cli.head_flags_ignored("global_pointer")
