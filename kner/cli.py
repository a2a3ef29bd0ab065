"""What the command lines share: flag groups with one name per concept, and
a quiet TensorFlow.

Every CLI names a concept the same way: `--input_format` (the data files'
format), `--input_tag_scheme` (the tag scheme of column input files),
`--tag_scheme` (the scheme the model predicts), `--lenient` (repair invalid
tag sequences instead of failing), `--model_dir`, `--max_seq_length`,
`--batch_size`, `--seed`, `--strategy`, `--mixed_precision`,
`--jit_compile`. A CLI defines the groups it needs before `run_cli`:

```python
from kner import cli

cli.define_data_flags()
cli.define_runtime_flags()
```
"""

from __future__ import annotations

import logging as std_logging
import os
from pathlib import Path

from absl import flags, logging

from kner.data.corpus import FORMATS
from kner.data.tags import SCHEMES

INPUT_FORMATS = ("auto", *FORMATS)
INPUT_TAG_SCHEMES = ("auto", *SCHEMES)


def define_data_flags() -> None:
    """How labelled data files are read: `--input_format`,
    `--input_tag_scheme`, `--lenient`."""
    flags.DEFINE_enum("input_format", "auto", list(INPUT_FORMATS), "Format of the data files (auto: detected).")
    flags.DEFINE_enum(
        "input_tag_scheme", "auto", list(INPUT_TAG_SCHEMES), "Tag scheme of column files (auto: detected)."
    )
    flags.DEFINE_bool("lenient", False, "Repair invalid tag sequences in column files (counted) instead of failing.")


def define_runtime_flags() -> None:
    """Where a run writes and how it runs: `--model_dir`, `--seed`,
    `--strategy`, `--tpu`, `--mixed_precision`, `--jit_compile`,
    `--checkpoint_every`, `--log_every`."""
    from kner.training.distribute import STRATEGIES  # imports TensorFlow: only CLIs that train pay for it

    flags.DEFINE_string("model_dir", None, "Where checkpoints, summaries, weights and reports go.")
    flags.DEFINE_integer("seed", 42, "Seed for initialisation, dropout and batch order.")
    flags.DEFINE_enum("strategy", "default", list(STRATEGIES), "tf.distribute strategy.")
    flags.DEFINE_string("tpu", "", "TPU name or address for --strategy=tpu.")
    flags.DEFINE_enum("mixed_precision", None, ["mixed_float16", "mixed_bfloat16"], "Mixed-precision policy.")
    flags.DEFINE_bool("jit_compile", False, "Compile the training and evaluation steps with XLA.")
    flags.DEFINE_integer("checkpoint_every", 500, "Steps between checkpoints (also saved at each epoch end).")
    flags.DEFINE_integer("log_every", 20, "Steps between TensorBoard training summaries.")


def quiet_tensorflow() -> None:
    """Hides TensorFlow's own INFO log lines (one per checkpoint save, for
    example) but not kner's, which share absl's handler."""
    import tensorflow as tf

    package = str(Path(tf.__file__).parent) + os.sep
    tf.get_logger().setLevel(std_logging.WARNING)
    logging.get_absl_handler().addFilter(
        lambda record: record.levelno > std_logging.INFO or not record.pathname.startswith(package)
    )
