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

Each version records where it came from, `assets.extra/kner_source.json`
(`SOURCE`: the model_dir, the SHA-256 of its weights file and the export
settings; TF Serving ignores `assets.extra/` but for its warm-up file), so
that a model is never added unnoticed to the export folder of another: with
no `version` given, `export_model` (and `check_export_dir`, before a
training run) refuses a folder whose latest version came from another
model_dir, and `exported_from` says whether a version
holds a model_dir's current weights.

Example:
>>> export_model("runs/cluener", "serving/kner")
PosixPath('serving/kner/1')
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import tensorflow as tf

from kner.errors import InputError
from kner.models.artifacts import LABELS, VOCAB, WEIGHTS
from kner.serving.text_tagger import TextTagger
from kner.serving.warmup import write_warmup_requests
from kner.startup_noise import notices_hidden

# Where a version records its source, inside the version directory.
SOURCE = Path("assets.extra") / "kner_source.json"


def versions(export_dir: str | Path) -> list[int]:
    """The integer version directories under `export_dir`, ascending."""
    export_dir = Path(export_dir)
    if not export_dir.is_dir():
        return []
    return sorted(int(p.name) for p in export_dir.iterdir() if p.is_dir() and p.name.isdigit())


def weights_digest(model_dir: str | Path) -> str:
    """SHA-256 (hex) of the model_dir's weights file."""
    digest = hashlib.sha256()
    with open(Path(model_dir) / WEIGHTS, "rb") as weights:
        for block in iter(lambda: weights.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export_source(version_dir: str | Path) -> dict | None:
    """What `export_model` recorded about a version (`model_dir`,
    `weights_sha256`, ...); None for an export that has no record (made by
    another tool or an older kner)."""
    path = Path(version_dir) / SOURCE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def exported_from(version_dir: str | Path, model_dir: str | Path) -> bool:
    """Whether `version_dir` was exported from `model_dir` as its weights are now."""
    source = export_source(version_dir)
    return (
        source is not None
        and source["model_dir"] == str(Path(model_dir).resolve())
        and source["weights_sha256"] == weights_digest(model_dir)
    )


def check_export_dir(export_dir: str | Path, model_dir: str | Path) -> None:
    """InputError when the latest version of `export_dir` came from another
    model_dir (a training run checks this before it trains)."""
    export_dir, model_dir = Path(export_dir), Path(model_dir)
    existing = versions(export_dir)
    source = export_source(export_dir / str(existing[-1])) if existing else None
    if source is None or source["model_dir"] == str(model_dir.resolve()):
        return
    latest, free = existing[-1], existing[-1] + 1
    raise InputError(
        export_dir,
        None,
        f"version {latest} there was exported from {source['model_dir']}, not from {model_dir.resolve()}: give "
        f"--export_dir a folder of its own, or serve this model as the next version of that one with "
        f"python -m kner.export --version={free}",
    )


def export_model(
    model_dir: str | Path,
    export_dir: str | Path,
    version: int | None = None,
    window_stride: int | None = None,
    max_seq_length: int | None = None,
    compute_dtype: str = "float32",
    jit_compile: bool = False,
    tensor_parallel: int = 1,
) -> Path:
    """Writes `export_dir/<version>` and returns that path.

    Args:
        model_dir: a trained model_dir (`kner.models.artifacts`).
        export_dir: the model's base path for TF Serving.
        version: default: one more than the highest existing version, or 1,
            unless the highest came from another model_dir (InputError: a
            given `version` is how to add another model on purpose). An
            existing version is never overwritten (InputError).
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
            the SavedModel. "int8": the encoder's projection kernels stored as
            int8 and their products computed on int8 with each input
            quantized over its range at every call (`kner.serving.int8`).
        jit_compile: the model call and the tag decoding compiled by XLA
            (`kner.serving.xla`): batch-1 latency of small models, at a
            compile per shape bucket (the one-text buckets at load:
            `kner.serving.warmup`); TF Serving needs
            `--xla_cpu_compilation_enabled=true`. Per-position heads and
            float32 only (ValueError otherwise).
        tensor_parallel: each encoder layer split into this many
            independent parts (Megatron-LM's tensor parallelism), which a
            server with one intra-op and this many inter-op threads runs on
            as many cores for one text (`kner.serving.fused_encoder`); it
            divides the heads and the intermediate size (ValueError otherwise).
    """
    export_dir, model_dir = Path(export_dir), Path(model_dir)
    if version is None:
        check_export_dir(export_dir, model_dir)
        version = (versions(export_dir) or [0])[-1] + 1
    target = export_dir / str(version)
    if version < 0:
        raise InputError(target, None, f"a version is a number from 0 up, not {version}: choose another --version")
    if target.exists():
        free = (versions(export_dir) or [0])[-1] + 1
        message = f"version {version} exists already: choose another --version (next free: {free})"
        raise InputError(target, None, message)
    with notices_hidden():  # TensorFlow's start-up notices, when a program's first graph is this one
        module = TextTagger.from_model_dir(
            model_dir, window_stride, max_seq_length, compute_dtype, jit_compile, tensor_parallel
        )
        module.assets = [tf.saved_model.Asset(str(Path(model_dir) / name)) for name in (VOCAB, LABELS)]
        partial = export_dir / f".partial-{version}"
        shutil.rmtree(partial, ignore_errors=True)
        tf.saved_model.save(module, str(partial), signatures=module.serving_signatures())
    source = {
        "model_dir": str(model_dir.resolve()),
        "weights_sha256": weights_digest(model_dir),
        "window_stride": window_stride,
        "max_seq_length": max_seq_length,
        "compute_dtype": compute_dtype,
        "jit_compile": jit_compile,
        "tensor_parallel": tensor_parallel,
    }
    (partial / SOURCE).parent.mkdir(exist_ok=True)
    if jit_compile:  # TF Serving compiles the one-text shapes before the version takes traffic
        write_warmup_requests(partial, module.window, module.tokenizer.per_character)
    (partial / SOURCE).write_text(json.dumps(source, indent=1) + "\n", encoding="utf-8")
    partial.rename(target)
    return target
