"""Google TF1 checkpoints, read and written: the format every original
release (Google BERT, ALBERT, ELECTRA, HFL's Chinese models) ships in.

A checkpoint is a prefix (`dir/bert_model.ckpt`) with an `.index` file and
one or more `.data-NNNNN-of-NNNNN` shards. Variables are read by name with
`tf.train.load_checkpoint` and written with the core `SaveV2` op, so what
kner writes is read by TF1 `tf.train.Saver`, `tf.train.load_checkpoint` and
Hugging Face's conversion scripts alike.

Example:

```python
write_variables("out/bert_model.ckpt", {"bert/embeddings/word_embeddings": table})
read_variables("out/bert_model.ckpt")   # {"bert/...": ((21128, 768), "float32")}
```
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import tensorflow as tf

from kner.errors import InputError

_SHARD_SUFFIX = re.compile(r"\.(index|meta|data-\d+-of-\d+)$")


def checkpoint_prefix(path: str | Path) -> Path:
    """`path` without a shard suffix (`.index`, `.meta`, `.data-*`)."""
    return Path(_SHARD_SUFFIX.sub("", str(path)))


def find_prefix(directory: Path, preferred: str) -> Path:
    """The checkpoint prefix in `directory`: `preferred` if its index exists,
    else the one `.index` file there (InputError when none or several)."""
    if (directory / f"{preferred}.index").exists():
        return directory / preferred
    indexes = sorted(directory.glob("*.index"))
    if not indexes:
        raise InputError(directory / f"{preferred}.index", None, "missing checkpoint index file")
    if len(indexes) > 1:
        found = ", ".join(p.name for p in indexes)
        raise InputError(directory, None, f"several checkpoints ({found}): pass one prefix")
    return indexes[0].with_suffix("")


def check_shards(prefix: Path) -> None:
    """InputError unless `prefix.index` and a `prefix.data-*` file exist."""
    if not Path(f"{prefix}.index").exists():
        raise InputError(f"{prefix}.index", None, "missing checkpoint index file")
    if not list(prefix.parent.glob(f"{prefix.name}.data-*")):
        raise InputError(f"{prefix}.data-00000-of-00001", None, "missing checkpoint data file")


def reader(prefix: str | Path) -> tf.train.CheckpointReader:
    """A reader of the checkpoint at `prefix` (InputError if unreadable)."""
    try:
        return tf.train.load_checkpoint(str(prefix))
    except (tf.errors.OpError, ValueError) as e:
        message = getattr(e, "message", str(e)).splitlines()[0]
        raise InputError(prefix, None, f"unreadable checkpoint: {message}") from None


def read_variables(prefix: str | Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """Name -> (shape, dtype name) of every variable in a TF checkpoint."""
    checkpoint = reader(prefix)
    dtypes = checkpoint.get_variable_to_dtype_map()
    return {
        name: (tuple(shape), dtypes[name].name)
        for name, shape in sorted(checkpoint.get_variable_to_shape_map().items())
    }


def write_variables(prefix: str | Path, tensors: Mapping[str, np.ndarray]) -> Path:
    """Writes `tensors` (name -> array) as a TF checkpoint at `prefix`."""
    tf.raw_ops.SaveV2(
        prefix=str(prefix),
        tensor_names=list(tensors),
        shape_and_slices=[""] * len(tensors),
        tensors=list(tensors.values()),
    )
    return Path(prefix)
