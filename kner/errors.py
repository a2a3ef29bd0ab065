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

import re
import sys
from collections.abc import Callable
from pathlib import Path

from absl import app, flags

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


def _parse_flags(argv: list[str]) -> list[str]:
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        _usage_error(error)


def _usage_error(error: Exception) -> None:
    print(f"error: {usage_message(error)} (see {program_name()} --help)", file=sys.stderr)
    sys.exit(EXIT_USAGE_ERROR)


def run_cli(main: Callable[[list[str]], object]) -> None:
    """Run an absl `main(argv)`, reporting bad input and bad usage as one
    stderr line.

    An `InputError` (or a stray `FileNotFoundError`/`UnicodeDecodeError`)
    prints `error: <message>` to stderr and exits with status 2, never a
    traceback. So does a usage error: a flag that does not parse, is missing
    or takes no such value, or `app.UsageError` raised by `main`
    (`error: <cause> (see <program> --help)`). Ctrl-C prints `interrupted`
    and exits with status 130.
    """

    def guarded(argv: list[str]) -> object:
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
