import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kner.errors import InputError


def test_input_error_str():
    assert str(InputError("train.json", 3, "bad span")) == "train.json:3: bad span"
    error = InputError("dev.txt", None, "file is empty")
    assert str(error) == "dev.txt: file is empty"
    assert (error.path, error.line, error.message) == ("dev.txt", None, "file is empty")
    assert isinstance(error, ValueError)


def test_from_os_error(tmp_path):
    with pytest.raises(OSError) as caught:
        (tmp_path / "absent").read_text()
    error = InputError.from_os_error("absent", caught.value)
    assert str(error) == "absent: no such file or directory"


@pytest.mark.parametrize(
    "raised, stderr",
    [
        ('InputError("a.json", 4, "bad")', "error: a.json:4: bad\n"),
        (
            'open("/nonexistent/x")',
            "error: /nonexistent/x: no such file or directory\n",
        ),
        ('b"\\xff".decode()', "error: not valid UTF-8: invalid start byte\n"),
    ],
)
def test_run_cli_prints_one_line_and_exits_2(raised, stderr):
    script = textwrap.dedent(
        f"""
        from kner.errors import InputError, run_cli

        def main(argv):
            raise {raised}

        run_cli(main)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert (result.returncode, result.stderr, result.stdout) == (2, stderr, "")


def test_run_cli_passes_other_exit_codes():
    script = "from kner.errors import run_cli\nrun_cli(lambda argv: print(argv[1:]))"
    result = subprocess.run([sys.executable, "-c", script, "x"], capture_output=True, text=True, check=False)
    assert (result.returncode, result.stdout) == (0, "['x']\n")


@pytest.mark.parametrize(
    "argv, stderr",
    [
        ([], "error: --name is required (see x.py --help)\n"),
        (["--name=a", "--size=big"], "error: --size=big: value should be one of <small|large> (see x.py --help)\n"),
        (["--name=a", "--bogus=1"], "error: Unknown command line flag 'bogus' (see x.py --help)\n"),
        (["--name=a", "extra"], "error: takes no arguments (see x.py --help)\n"),
    ],
)
def test_run_cli_usage_errors_are_one_line_and_exit_2(tmp_path, argv, stderr):
    script = tmp_path / "x.py"
    script.write_text(
        textwrap.dedent(
            """
            from absl import app, flags
            from kner.errors import run_cli

            flags.DEFINE_string("name", None, "A name.")
            flags.DEFINE_enum("size", "small", ["small", "large"], "A size.")
            flags.mark_flag_as_required("name")

            def main(argv):
                if len(argv) > 1:
                    raise app.UsageError("takes no arguments")

            run_cli(main)
            """
        )
    )
    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run([sys.executable, str(script), *argv], capture_output=True, text=True, env=env)
    assert (result.returncode, result.stderr, result.stdout) == (2, stderr, "")
