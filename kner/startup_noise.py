"""TensorFlow's start-up notices, and how kner keeps them off the screen.

Every process that imports TensorFlow prints about ten lines to stderr before
it can do anything (`oneDNN custom operations are on`, `Could not find cuda
drivers`, `failed call to cuInit` at error level on a machine without a GPU,
...), and the first graph it runs adds `oneDNN supports DT_INT32 only on
platforms with AVX-512` at error level, on CPUs that have AVX-512 too.
`TF_CPP_MIN_LOG_LEVEL` cannot hide them: most are printed before TensorFlow
reads it. `STARTUP_NOISE` matches them and nothing else.

- `python -m kner.X` sends the whole process's stderr through a filter
  (`kner.cli.quiet_startup`);
- the Python API (`kner.Predictor`) wraps what prints them (importing
  TensorFlow, loading a model, its first call) in `notices_hidden()`.

Either way, `TF_CPP_MIN_LOG_LEVEL=0` in the environment (or `--verbosity=1`
on a CLI's command line) shows them.

Example:

```python
from kner.startup_noise import notices_hidden

with notices_hidden():
    import tensorflow as tf  # the start-up notices are dropped, anything else is shown
```
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator

STARTUP_NOISE = (
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    r"\] oneDNN custom operations are on",
    r"\] Could not find cuda drivers on your machine",
    r"\] This TensorFlow binary is optimized to use available CPU instructions",
    r"^To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags",
    r"\] failed call to cuInit",
    r"\] oneDNN supports DT_INT(32|64) only on platforms with AVX-512",
    r"\] Unable to register cu(DNN|FFT|BLAS) factory",
    r"\] TF-TRT Warning: Could not find TensorRT",
)
NOISE = re.compile("|".join(f"(?:{pattern})" for pattern in STARTUP_NOISE).encode())
_LOCK = threading.RLock()  # a nested block holds back into the outer one


def shown() -> bool:
    """Whether the user asked to see the notices: `TF_CPP_MIN_LOG_LEVEL=0`."""
    return os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0"


@contextlib.contextmanager
def notices_hidden() -> Iterator[None]:
    """Holds back what is written to stderr (file descriptor 2, where
    TensorFlow's C++ code writes) inside the block, and writes it out at the
    end without the lines `STARTUP_NOISE` matches. One block at a time (a
    lock); nothing is held back when `shown()`."""
    if shown():
        yield
        return
    with _LOCK, tempfile.TemporaryFile() as held:
        sys.stderr.flush()
        stderr = os.dup(2)
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(stderr, 2)
            os.close(stderr)
            held.seek(0)
            kept = b"".join(line for line in held if not NOISE.search(line))
            while kept:
                kept = kept[os.write(2, kept) :]
