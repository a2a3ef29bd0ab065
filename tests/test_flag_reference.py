"""docs/flags.md is what tools/flag_reference.py makes of the commands' flag
definitions now, and the generator finds every command and its flags."""

import difflib
import os
import subprocess
import sys
from pathlib import Path

from tools import flag_reference

ROOT = Path(__file__).resolve().parents[1]


def test_flag_reference_is_current():
    # A process of its own: the generator defines and removes every command's flags.
    script = "import sys; from tools.flag_reference import reference; sys.stdout.write(reference())"
    made = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        encoding="utf-8",
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert made.returncode == 0, made.stderr[-3000:]
    written = flag_reference.OUTPUT.read_text(encoding="utf-8")
    diff = "".join(difflib.unified_diff(written.splitlines(True), made.stdout.splitlines(True), "docs/flags.md", "now"))
    assert made.stdout == written, f"docs/flags.md is out of date: run `{flag_reference.COMMAND}`\n{diff[:4000]}"


def test_every_cli_is_found():
    assert {"kner.train", "kner.distill", "kner.export", "kner.predict", "kner.pretrain", "kner.data"} <= set(
        flag_reference.command_modules()
    )


def test_a_new_cli_is_found(tmp_path):
    package = tmp_path / "pkg"
    (package / "tool").mkdir(parents=True)
    (package / "new.py").write_text('if __name__ == "__main__":\n    run_cli(main)\n')
    (package / "tool" / "__main__.py").write_text('if __name__ == "__main__":\n    run_cli(main)\n')
    (package / "library.py").write_text("def main():\n    run_cli(main)\n")  # no __main__ block
    assert flag_reference.command_modules(package) == ["pkg.new", "pkg.tool"]


def test_render_marks_required_flags_and_rules():
    flag = flag_reference.Flag("input", "string", "required", "Texts: a | b.")
    command = flag_reference.Command("kner.x", "Does x.", [flag], ["give exactly one of --a or --b"])
    page = flag_reference.render([command])
    assert "| `--input` | string | required | Texts: a \\| b. |" in page
    assert "- give exactly one of --a or --b" in page
    assert "## python -m kner.x" in page
