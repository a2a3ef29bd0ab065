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


def test_run_cli_passes_other_exit_codes_and_the_arguments_of_a_cli_that_takes_them():
    script = "from kner.errors import run_cli\nrun_cli(lambda argv: print(argv[1:]), takes_arguments=True)"
    result = subprocess.run([sys.executable, "-c", script, "x"], capture_output=True, text=True, check=False)
    assert (result.returncode, result.stdout) == (0, "['x']\n")


@pytest.mark.parametrize(
    "argv, stderr",
    [
        ([], "error: --name is required (see x.py --help)\n"),
        (["--name=a", "--size=big"], "error: --size=big: value should be one of <small|large> (see x.py --help)\n"),
        (["--name=a", "--bogus=1"], "error: Unknown command line flag 'bogus' (see x.py --help)\n"),
        (["--name=usage"], "error: no such name (see x.py --help)\n"),
        (
            ["--name=a", "extra"],
            "error: unexpected argument 'extra': this command takes flags only (see x.py --help)\n",
        ),
        (
            ["--name=a", "x", "y"],
            "error: unexpected arguments 'x', 'y': this command takes flags only (see x.py --help)\n",
        ),
        (
            ["--name=a", "--fast", "False"],
            "error: 'False' after --fast is not its value: write booleans as --fast, --nofast or --fast=false "
            "(see x.py --help)\n",
        ),
        (
            ["--name=a", "--nofast", "true"],
            "error: 'true' after --nofast is not its value: write booleans as --fast, --nofast or --fast=false "
            "(see x.py --help)\n",
        ),
    ],
)
def test_run_cli_usage_errors_are_one_line_and_exit_2(tmp_path, argv, stderr):
    """Main never runs (it would print): a stray positional argument, a
    boolean flag given a separate value (absl would read `--fast False` as
    `--fast` plus a stray `False`: abseil/abseil-py#84), a bad flag."""
    result = run_x(tmp_path, argv)
    assert (result.returncode, result.stderr, result.stdout) == (2, stderr, "")


X_SCRIPT = """
import absl.testing.absltest  # as `import tensorflow` does
from absl import app, flags, logging
from kner.errors import run_cli

flags.DEFINE_string("name", None, "A name.")
flags.DEFINE_enum("size", "small", ["small", "large"], "A size.")
flags.DEFINE_bool("fast", False, "Go fast.")
flags.mark_flag_as_required("name")

def main(argv):
    if flags.FLAGS.name == "usage":
        raise app.UsageError("no such name")
    logging.info("reading %s", flags.FLAGS.name)
    logging.warning("a nested span dropped")
    print("main ran", flags.FLAGS.fast)

run_cli(main)
"""


def run_x(tmp_path: Path, argv: list[str]) -> subprocess.CompletedProcess:
    script = tmp_path / "x.py"
    script.write_text(X_SCRIPT)
    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run([sys.executable, str(script), *argv], capture_output=True, text=True, env=env)


@pytest.mark.parametrize("argv", [["--name=a", "--fast"], ["--name=a", "--fast=false"], ["--nofast", "--name", "a"]])
def test_booleans_written_as_absl_reads_them_run(tmp_path, argv):
    result = run_x(tmp_path, argv)
    assert (result.returncode, result.stdout) == (0, f"main ran {argv[1] == '--fast'}\n"), result.stderr


def test_log_lines_are_plain_unless_verbose(tmp_path):
    result = run_x(tmp_path, ["--name=a"])
    assert result.stderr == "reading a\nwarning: a nested span dropped\n"
    verbose = run_x(tmp_path, ["--name=a", "--verbosity=1"]).stderr.splitlines()
    assert verbose[0].startswith("I") and verbose[0].endswith("x.py:14] reading a"), verbose


@pytest.mark.parametrize("flag", ["--help", "--helpfull", "-?"])
def test_help_exits_0_and_lists_no_test_flags(tmp_path, flag):
    """absl's help flags exit 1; absl.testing (which `import tensorflow`
    imports) would add `--test_random_seed` and others to --helpfull."""
    result = run_x(tmp_path, [flag])
    assert result.returncode == 0, result.stderr
    assert "--name" in result.stdout and "--[no]fast" in result.stdout
    assert "test_random_seed" not in result.stdout and "absl.testing" not in result.stdout


# Each entry point: its required arguments (OUT: a path under the test's
# folder), a boolean flag it reads, and what a stray word gets instead of
# the message of a CLI that takes flags only (`kner.data` and
# `kner.checkpoint` have commands).
ENTRY_POINTS = {
    "kner.train": (["--train_file=data/demo/train.json", "--model_dir=OUT"], "lenient", None),
    "kner.distill": (["--teacher_dir=OUT", "--train_file=data/demo/train.json", "--model_dir=OUT"], "lenient", None),
    "kner.pretrain": (["--corpus_files=data/pretrain_demo/corpus.txt", "--model_dir=OUT"], "nsp", None),
    "kner.export": (["--model_dir=OUT", "--export_dir=OUT"], "logtostderr", None),
    "kner.predict": (["--model_dir=OUT", "--input=data/demo/test.txt", "--output=OUT"], "lenient", None),
    "kner.report": (["--gold=data/demo/dev.json", "--predictions=OUT", "--output=OUT"], "lenient", None),
    "kner.data": (["convert", "data/demo/train.json", "OUT"], "lenient", "error: convert takes 2 file argument(s)"),
    "kner.checkpoint": (["inspect", "OUT"], "logtostderr", "error: expected the command: inspect PATH"),
}


@pytest.mark.slow
@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_every_entry_point_refuses_a_boolean_given_apart_and_a_stray_word(module, tmp_path):
    """`--lenient False` (absl: `--lenient` and a stray `False`) and a stray
    word exit 2 with one line, before anything is read or written."""
    from train_runs import REPO, child_env

    arguments, boolean, own_message = ENTRY_POINTS[module]
    out = tmp_path / "out"
    command = [sys.executable, "-m", module, *(a.replace("OUT", str(out)) for a in arguments)]
    see = f"(see python -m {module} --help)"
    trap = (
        f"'False' after --{boolean} is not its value: write booleans as --{boolean}, --no{boolean} or --{boolean}=false"
    )
    stray = own_message or "error: unexpected argument 'extra': this command takes flags only"
    for given, message in (([f"--{boolean}", "False"], f"error: {trap} {see}\n"), (["extra"], f"{stray} {see}\n")):
        result = subprocess.run([*command, *given], capture_output=True, text=True, env=child_env(), cwd=REPO)
        assert (result.returncode, result.stderr, result.stdout) == (2, message, ""), given
        assert not out.exists()
