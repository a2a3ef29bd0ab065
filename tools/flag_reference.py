"""Writes docs/flags.md, the flag reference of every `python -m kner.X`
command, from the commands' own absl flag definitions.

    python -m tools.flag_reference            # rewrite docs/flags.md
    python -m tools.flag_reference --check    # exit 1 if docs/flags.md is not current

A command is a module of `kner/` (or a package's `__main__.py`) that ends in
`if __name__ == "__main__":` and calls `run_cli` there, so a new CLI is listed
as soon as it exists. Each one runs in this process as `__main__`, up to the
point where it would parse its command line (`absl.app.run` is replaced by a
stop), so the flags defined only under `if __name__ == "__main__":` are
listed too; its key flags (its own and those it adopts, e.g. from
`kner.cli`) are read, then removed before the next command. Importing
TensorFlow once for all commands keeps this to a few seconds.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import os
import re
import runpy
import sys
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "docs" / "flags.md"
COMMAND = "python -m tools.flag_reference"
# The guide page that shows each command at work (a command not named here gets no link).
GUIDES = {
    "kner.checkpoint": "fine-tuning.md",
    "kner.data": "data.md",
    "kner.distill": "distillation.md",
    "kner.export": "serving.md",
    "kner.predict": "predicting.md",
    "kner.pretrain": "pretraining.md",
    "kner.report": "predicting.md",
    "kner.train": "fine-tuning.md",
}


@dataclass
class Flag:
    name: str
    kind: str
    default: str
    help: str


@dataclass
class Command:
    module: str
    summary: str
    flags: list[Flag]
    rules: list[str]


def command_modules(package: Path = ROOT / "kner") -> list[str]:
    """`kner.train`, `kner.data`, ...: the modules that run a CLI as `__main__`."""
    found = []
    for path in sorted(package.rglob("*.py")):
        if _runs_cli(path):
            parts = path.relative_to(package.parent).with_suffix("").parts
            found.append(".".join(parts[:-1] if parts[-1] == "__main__" else parts))
    return sorted(found)


def _runs_cli(path: Path) -> bool:
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            return "run_cli(" in ast.unparse(node)
    return False


class _Stop(Exception):
    """Raised by the stand-in for `absl.app.run`: the flags are defined."""


def read_command(module: str) -> Command:
    """Runs `module` as `__main__` up to `app.run` and reads its key flags."""
    from absl import app, flags

    values = flags.FLAGS
    before = set(values)
    captured: dict = {}

    def stop(*args, **kwargs):
        del args, kwargs
        main = sys.argv[0]  # absl names flags defined in __main__ after sys.argv[0]
        captured["flags"] = values.get_key_flags_for_module(main)
        captured["doc"] = sys.modules["__main__"].__doc__ or ""
        raise _Stop

    for name in [m for m in sys.modules if m == "kner" or m.startswith("kner.")]:
        del sys.modules[name]  # so that module-level flag definitions run again
    try:
        with mock.patch.object(app, "run", stop), contextlib.redirect_stdout(io.StringIO()):
            runpy.run_module(module, run_name="__main__", alter_sys=True)
    except _Stop:
        pass
    else:
        raise RuntimeError(f"{module} did not call absl.app.run (through kner.errors.run_cli)")
    try:
        found = sorted(captured["flags"], key=lambda flag: flag.name)
        return Command(module, _summary(captured["doc"]), [_describe(f) for f in found], _rules(found))
    finally:
        for name in set(values) - before:
            delattr(values, name)


def _summary(doc: str) -> str:
    """The first paragraph of the module's docstring, on one line."""
    first = doc.strip().split("\n\n")[0]
    return " ".join(first.split())


def _describe(flag) -> Flag:
    kind = flag.flag_type()
    enum = getattr(getattr(flag, "parser", None), "enum_values", None)
    if enum:
        kind = " \\| ".join(f"`{value}`" for value in enum)
    elif kind == "bool":
        kind = f"bool (`--{flag.name}` / `--no{flag.name}`)"
    meaning = re.sub(r"^<[^>]*>: ", "", " ".join(flag.help.split()))
    return Flag(flag.name, kind, _default(flag), meaning)


def _default(flag) -> str:
    if _required(flag):
        return "required"
    if flag.default is None:
        return ""
    if isinstance(flag.default, bool):
        return "`true`" if flag.default else "`false`"
    if flag.default == "":
        return '`""`'
    return f"`{flag.default_as_str.strip(chr(39))}`"


def _required(flag) -> bool:
    return any("must have a value other than None" in getattr(v, "message", "") for v in flag.validators)


def _rules(found) -> list[str]:
    """Constraints over several flags, e.g. exactly one of two."""
    rules = {}
    for flag in found:
        for validator in flag.validators:
            names = getattr(validator, "flag_names", None)
            if names and len(names) > 1:
                rules[tuple(names)] = _rule(validator, names)
    return list(rules.values())


def _rule(validator, names) -> str:
    """`Give exactly one of --a, --b.`, read from what the validator says when
    no flag, then every flag, has a value."""
    for value in (None, "x"):
        try:
            validator.checker(dict.fromkeys(names, value))
        except Exception as error:  # absl's ValidationError, or the checker's own
            message = " ".join(str(error).split())
            count = re.search(r"(Exactly|At most) one of", message)
            if count:
                return f"Give {count.group(1).lower()} one of {', '.join(f'`--{name}`' for name in names)}."
            return message
    return validator.message


def render(commands: list[Command]) -> str:
    lines = [
        "# Flag reference",
        "",
        f"<!-- Generated by `{COMMAND}` from the absl flag definitions; do not edit. -->",
        "",
        "Every `python -m kner.X` command and its flags, generated from their definitions by",
        f"`{COMMAND}` (tests/test_flag_reference.py checks that this page is current). A",
        "flagfile (`--flagfile=flags/tiny.cfg`) holds the same flags, one a line; flags after it on",
        "the command line override it. `--help` prints the same list for one command, `--helpfull`",
        "adds absl's and TensorFlow's own flags (`--flagfile`, `--verbosity`, ...).",
        "",
    ]
    lines += [f"- [`python -m {c.module}`](#{_anchor(c.module)})" for c in commands]
    for command in commands:
        guide = GUIDES.get(command.module)
        summary = command.summary + (f" Guide: [{guide}]({guide})." if guide else "")
        lines += ["", f"## python -m {command.module}", "", summary, ""]
        if not command.flags:
            lines.append("No flags of its own.")
            continue
        lines += [f"- {rule}" for rule in command.rules] + ([""] if command.rules else [])
        lines += ["| flag | type | default | meaning |", "|---|---|---|---|"]
        for flag in command.flags:
            meaning = flag.help.replace("|", "\\|")
            lines.append(f"| `--{flag.name}` | {flag.kind} | {flag.default} | {meaning} |")
    return "\n".join(lines) + "\n"


def _anchor(module: str) -> str:
    return "python--m-" + module.replace(".", "")


def reference() -> str:
    """docs/flags.md as the definitions make it now."""
    return render([read_command(module) for module in command_modules()])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with docs/flags.md instead of writing it")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))  # the checkout's kner, whatever the working directory
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    text = reference()
    if args.check:
        if OUTPUT.exists() and OUTPUT.read_text(encoding="utf-8") == text:
            print(f"{OUTPUT.relative_to(ROOT)} is current")
            return 0
        print(f"{OUTPUT.relative_to(ROOT)} is out of date: run `{COMMAND}`", file=sys.stderr)
        return 1
    OUTPUT.parent.mkdir(exist_ok=True)
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)} ({text.count(chr(10) + '## ')} commands)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
