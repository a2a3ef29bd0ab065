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
