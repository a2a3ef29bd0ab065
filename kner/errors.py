"""User-facing input errors and the wrapper every CLI runs under.

Example:

```python
from kner.errors import InputError, run_cli

def main(argv):
    raise InputError("train.json", 3, "span [5, 9] is outside the text")

if __name__ == "__main__":
    run_cli(main)  # prints "error: train.json:3: span ..." and exits 2
```
"""

import sys
from collections.abc import Callable
from pathlib import Path

from absl import app

EXIT_INPUT_ERROR = 2


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


def run_cli(main: Callable[[list[str]], object]) -> None:
    """Run an absl `main(argv)`, reporting bad input as one stderr line.

    An `InputError` (or a stray `FileNotFoundError`/`UnicodeDecodeError`)
    prints `error: <message>` to stderr and exits with status 2, never a
    traceback.
    """

    def guarded(argv: list[str]) -> object:
        try:
            return main(argv)
        except InputError as error:
            message = str(error)
        except FileNotFoundError as error:
            message = str(InputError.from_os_error(error.filename, error))
        except UnicodeDecodeError as error:
            message = f"not valid UTF-8: {error.reason}"
        print(f"error: {message}", file=sys.stderr)
        sys.exit(EXIT_INPUT_ERROR)

    app.run(guarded)
