"""User-facing input errors and the wrapper every CLI runs under.

A CLI's mistakes reach the user as one line on stderr and exit status 2:
bad input (`InputError`, naming file and line), and bad usage (an unknown or
missing flag, a bad enum value, `absl.app.UsageError`), which names the
problem first and points at `--help` instead of printing the whole usage.

Example:

```python
from kner.errors import InputError, run_cli

def main(argv):
    raise InputError("train.json", 3, "span [5, 9] is outside the text")

if __name__ == "__main__":
    run_cli(main)  # prints "error: train.json:3: span ..." and exits 2
```
"""

import logging as std_logging
import re
import sys
from collections.abc import Callable
from pathlib import Path

from absl import app, flags, logging

EXIT_INPUT_ERROR = 2
EXIT_USAGE_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it


class InputError(ValueError):
    """Bad user input, located at `path:line` (`line` is None for a whole file)."""

    def __init__(self, path: str | Path, line: int | None, message: str):
        self.path = str(path)
        self.line = line
        self.message = message
        super().__init__(str(self))

    @classmethod
    def from_os_error(cls, path: str | Path, error: OSError) -> "InputError":
        """`path: no such file or directory` and the like."""
        return cls(path, None, (error.strerror or str(error)).lower())

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.path}: {self.message}"
        return f"{self.path}:{self.line}: {self.message}"


def usage_message(error: Exception) -> str:
    """A flag-parsing or usage error as one line: `--export_dir is required`
    rather than absl's `flag --export_dir=None: Flag --export_dir must have a
    value other than None.`"""
    message = " ".join(str(error).split())
    required = re.search(r"Flag (--\w+) must have a value other than None", message)
    if required:
        return f"{required.group(1)} is required"
    exclusive = re.search(r"(Exactly|At most) one of \(([\w, ]+)\) must have a value", message)
    if exclusive:
        names = " or ".join(f"--{name.strip()}" for name in exclusive.group(2).split(","))
        return f"give {exclusive.group(1).lower()} one of {names}"
    return message.removeprefix("flag ")


def program_name() -> str:
    """How the running CLI was started: `python -m kner.train`, or the script's name."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name:
        return f"python -m {spec.name.removesuffix('.__main__')}"
    return Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "the program"


# absl's help flags: they print the help and exit with status 1.
HELP_FLAGS = ("help", "helpshort", "helpfull", "helpxml", "?")
# Words absl reads as a boolean's value after `=` (case-insensitive).
BOOLEAN_WORDS = frozenset({"true", "false", "t", "f", "1", "0", "yes", "no"})


class PlainLogLines(std_logging.Formatter):
    """Log records as plain lines, the way kner's own messages read:
    `message` for INFO, `warning: message`, `error: message`, instead of
    absl's `I1206 08:33:46.065852 140549982182272 train.py:74] message`
    (which `--verbosity=1` keeps)."""

    def format(self, record: std_logging.LogRecord) -> str:
        message = super().format(record)
        if record.levelno >= std_logging.ERROR:
            return f"error: {message}"
        if record.levelno >= std_logging.WARNING:
            return f"warning: {message}"
        return message


def _parse_flags(argv: list[str]) -> list[str]:
    _drop_test_flags()
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        _usage_error(error)
    except SystemExit as stop:  # absl's --help and --helpfull exit 1 after printing what was asked for
        asked = any(arg.lstrip("-").split("=")[0] in HELP_FLAGS for arg in argv[1:] if arg.startswith("-"))
        sys.exit(0 if asked and stop.code == 1 else stop.code)


def _drop_test_flags() -> None:
    """Forgets the flags of `absl.testing` (`--test_random_seed`,
    `--test_tmpdir`, ...): `import tensorflow` imports it in every process
    (`tf.__internal__.distribute.combinations` imports TensorFlow's test
    utilities), so they would show in `--helpfull` and parse, though no CLI
    runs tests."""
    for module, defined in list(flags.FLAGS.flags_by_module_dict().items()):
        if module.startswith("absl.testing"):
            for flag in list(defined):  # deleting a flag removes it from this list
                if flag.name in flags.FLAGS:
                    delattr(flags.FLAGS, flag.name)


def _usage_error(error: Exception | str) -> None:
    message = error if isinstance(error, str) else usage_message(error)
    print(f"error: {message} (see {program_name()} --help)", file=sys.stderr)
    sys.exit(EXIT_USAGE_ERROR)


def boolean_value_problem(argv: list[str]) -> str | None:
    """The complaint about a boolean flag followed by a separate value, like
    `--lenient False`: absl reads it as `--lenient` (true) and a stray
    argument `False` (abseil/abseil-py#84), so the flag would silently mean
    the opposite. None when `argv` (the command line, before parsing) has
    none."""
    for flag_arg, word in zip(argv[1:], argv[2:]):
        if not flag_arg.startswith("-") or "=" in flag_arg or word.lower() not in BOOLEAN_WORDS:
            continue
        name = flag_arg.lstrip("-")
        if name not in flags.FLAGS and name.startswith("no"):
            name = name[2:]
        if name in flags.FLAGS and isinstance(flags.FLAGS[name], flags.BooleanFlag):
            return (
                f"{word!r} after {flag_arg} is not its value: write booleans as --{name}, --no{name} or --{name}=false"
            )
    return None


def stray_arguments_problem(argv: list[str], rest: list[str], takes_arguments: bool) -> str | None:
    """The complaint about positional arguments on the command line `argv`
    that parsing left over (`rest`, without the program): a boolean flag
    given a separate value (`boolean_value_problem`), else any argument to a
    CLI that takes none. None when all is well."""
    if not rest:
        return None
    problem = boolean_value_problem(argv)
    if problem or takes_arguments:
        return problem
    words = ", ".join(repr(word) for word in rest)
    return f"unexpected argument{'s' if len(rest) > 1 else ''} {words}: this command takes flags only"


def run_cli(main: Callable[[list[str]], object], takes_arguments: bool = False) -> None:
    """Run an absl `main(argv)`, reporting bad input and bad usage as one
    stderr line.

    An `InputError` (or a stray `FileNotFoundError`/`UnicodeDecodeError`)
    prints `error: <message>` to stderr and exits with status 2, never a
    traceback. So does a usage error: a flag that does not parse, is missing
    or takes no such value, a positional argument to a CLI that takes none
    (unless `takes_arguments`: `kner.data`'s and `kner.checkpoint`'s
    commands), a boolean flag given a separate value (`--nsp False`, which
    absl would read as `--nsp`), or `app.UsageError` raised by `main`
    (`error: <cause> (see <program> --help)`); `main` is not called. Ctrl-C
    prints `interrupted` and exits with status 130. `--help` and
    `--helpfull` exit with status 0.
    """

    def guarded(argv: list[str]) -> object:
        problem = stray_arguments_problem(sys.argv, argv[1:], takes_arguments)
        if problem:
            _usage_error(problem)
        if flags.FLAGS.verbosity < 1:
            logging.get_absl_handler().setFormatter(PlainLogLines())
        try:
            return main(argv)
        except app.UsageError as error:
            _usage_error(error)
        except KeyboardInterrupt:  # Ctrl-C where no loop handles it (`kner.cli.StopRequest`)
            print("interrupted", file=sys.stderr)
            sys.exit(EXIT_INTERRUPTED)
        except InputError as error:
            message = str(error)
        except FileNotFoundError as error:
            message = str(InputError.from_os_error(error.filename, error))
        except UnicodeDecodeError as error:
            message = f"not valid UTF-8: {error.reason}"
        print(f"error: {message}", file=sys.stderr)
        sys.exit(EXIT_INPUT_ERROR)

    app.run(guarded, flags_parser=_parse_flags)
