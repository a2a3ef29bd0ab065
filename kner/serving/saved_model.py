"""A trained model_dir as a SavedModel that stock TF Serving loads.

`export_model` writes `export_dir/<version>/` (`saved_model.pb`,
`variables/`, `assets/` with `vocab.txt` and `labels.json`), the layout
`tensorflow_model_server --model_base_path=export_dir` watches. The version
is the next integer after the versions already there (1 for a new
directory); a version is written under a temporary name and renamed when
complete, so the server never sees half a model. Signatures (see
`kner.serving.text_tagger`): `serving_default` takes raw texts (`text`,
string [None]) and returns tags and entities; `predict_ids` takes
`token_ids`, `padding_mask`, `segment_ids`.

Example:
>>> export_model("runs/cluener", "serving/kner")
PosixPath('serving/kner/1')
"""

from __future__ import annotations

import shutil
from pathlib import Path

import tensorflow as tf

from kner.errors import InputError
from kner.models.artifacts import LABELS, VOCAB
from kner.serving.text_tagger import TextTagger


def versions(export_dir: str | Path) -> list[int]:
    """The integer version directories under `export_dir`, ascending."""
    export_dir = Path(export_dir)
    if not export_dir.is_dir():
        return []
    return sorted(int(p.name) for p in export_dir.iterdir() if p.is_dir() and p.name.isdigit())


def export_model(
    model_dir: str | Path,
    export_dir: str | Path,
    version: int | None = None,
    window_stride: int | None = None,
    max_seq_length: int | None = None,
    compute_dtype: str = "float32",
) -> Path:
    """Writes `export_dir/<version>` and returns that path.

    Args:
        model_dir: a trained model_dir (`kner.models.artifacts`).
        export_dir: the model's base path for TF Serving.
        version: default: one more than the highest existing version, or 1.
            An existing version is never overwritten (InputError).
        window_stride: characters between the starts of the windows long
            texts are cut into; default half a window.
        max_seq_length: tokens per window; default the training one.
        compute_dtype: "float32", or "bfloat16": the encoder's weights are
            stored rounded to bfloat16 and its matmuls compute in bfloat16
            (2-2.5x the float32 matmul rate on CPUs with AVX512-BF16 or AMX),
            its element-wise work in float32 (`kner.serving.bfloat16`); tag
            scores, CRF decoding and span reading stay float32. Rounding the stored
            weights loses nothing a float32-weight mixed policy would keep,
            since that casts every weight to bfloat16 at every call; it also
            saves those casts (most of a batch-1 call at 12L/768) and halves
            the SavedModel.
    """
    export_dir = Path(export_dir)
    if version is None:
        version = (versions(export_dir) or [0])[-1] + 1
    target = export_dir / str(version)
    if version < 0:
        raise InputError(target, None, f"a version is a number from 0 up, not {version}: choose another --version")
    if target.exists():
        free = (versions(export_dir) or [0])[-1] + 1
        message = f"version {version} exists already: choose another --version (next free: {free})"
        raise InputError(target, None, message)
    module = TextTagger.from_model_dir(model_dir, window_stride, max_seq_length, compute_dtype)
    module.assets = [tf.saved_model.Asset(str(Path(model_dir) / name)) for name in (VOCAB, LABELS)]
    partial = export_dir / f".partial-{version}"
    shutil.rmtree(partial, ignore_errors=True)
    tf.saved_model.save(module, str(partial), signatures=module.serving_signatures())
    partial.rename(target)
    return target
