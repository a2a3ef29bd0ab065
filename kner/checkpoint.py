"""Load Chinese BERT checkpoints into `keras_hub.models.BertBackbone`, and back.

Reads the formats users download:

- Google TF1 checkpoints (`chinese_L-12_H-768_A-12`, HFL `chinese-bert-wwm-ext`,
  `chinese-roberta-wwm-ext(-large)`, RBT3, ...): a directory with
  `bert_config.json`, `bert_model.ckpt.index` / `.data-*` and `vocab.txt`, or
  the checkpoint prefix `dir/bert_model.ckpt`. Every `bert/*` variable is
  mapped onto the backbone; `cls/*` (pre-training heads), optimizer slots
  (`*/adam_m`, `*/adam_v`), `global_step` and other non-`bert/` variables
  (fine-tuning heads) are ignored.
- Hugging Face directories (`config.json` + `model.safetensors`), through
  keras-hub's own converter. `pytorch_model.bin` is not read (no torch).

The position table is kept whole: a checkpoint with
`max_position_embeddings=512` gives a backbone that takes any length up to
512, whatever `max_seq_length` is; `max_seq_length` is only checked against
it. keras-hub's BERT uses the tanh approximation of GELU, which is exactly
Google's `gelu`, so loaded outputs match Google's `modeling.py`. (Hugging
Face's `"gelu"` is the erf form; the Chinese checkpoints were trained with the
tanh form, which keras-hub uses for those too.)

`save_google_checkpoint` writes a backbone back in Google's format, with
Google's variable names, so that TF1 code, `transformers` conversion scripts
and this module read it.

Example:

```python
backbone = load_backbone("chinese_L-12_H-768_A-12", max_seq_length=128)
save_google_checkpoint(backbone, "exported", vocab_file="vocab.txt")
```

Command line: `python -m kner.checkpoint inspect PATH` prints the config and
the variables, and says whether kner can load the checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import keras
import keras_hub
import numpy as np
import tensorflow as tf
from absl import app, logging

from kner.errors import InputError, run_cli
from kner.tokenizer import read_vocab

GOOGLE_CONFIG = "bert_config.json"
GOOGLE_PREFIX = "bert_model.ckpt"
HF_CONFIG = "config.json"
HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
VOCAB = "vocab.txt"
CONFIG_KEYS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "max_position_embeddings",
    "type_vocab_size",
    "initializer_range",
)
KERAS_HUB_INITIALIZER_RANGE = 0.02
_LAYER = re.compile(r"^bert/encoder/layer_(\d+)/")


@dataclasses.dataclass(frozen=True)
class CheckpointFiles:
    """Where a checkpoint's parts are. `format` is "google" or "huggingface";
    `weights` is the TF checkpoint prefix or the Hugging Face directory."""

    format: str
    config: Path
    weights: Path
    vocab: Path | None


class _Weight(NamedTuple):
    name: str  # Google's variable name.
    variable: keras.Variable
    shape: tuple[int, ...]  # Google's shape; the keras-hub one is a reshape.


def locate_checkpoint(path: str | Path) -> CheckpointFiles:
    """Finds config, weights and vocab of a Google or Hugging Face checkpoint.

    >>> locate_checkpoint("chinese_L-12_H-768_A-12").weights
    PosixPath('chinese_L-12_H-768_A-12/bert_model.ckpt')
    """
    path = Path(path)
    if path.is_dir():
        if (path / GOOGLE_CONFIG).exists() or list(path.glob("*.ckpt*.index")):
            return _google_files(path, _google_prefix(path))
        if (path / HF_CONFIG).exists():
            return _huggingface_files(path)
        raise InputError(
            path,
            None,
            f"not a BERT checkpoint directory: expected {GOOGLE_CONFIG} + "
            f"{GOOGLE_PREFIX}.index (Google) or {HF_CONFIG} + "
            f"{HF_WEIGHTS[0]} (Hugging Face)",
        )
    prefix = Path(re.sub(r"\.(index|meta|data-\d+-of-\d+)$", "", str(path)))
    if not Path(f"{prefix}.index").exists():
        raise InputError(path, None, "no such checkpoint directory or prefix")
    return _google_files(prefix.parent, prefix)


def _google_prefix(directory: Path) -> Path:
    if (directory / f"{GOOGLE_PREFIX}.index").exists():
        return directory / GOOGLE_PREFIX
    indexes = sorted(directory.glob("*.index"))
    if not indexes:
        raise InputError(directory / f"{GOOGLE_PREFIX}.index", None, "missing checkpoint index file")
    if len(indexes) > 1:
        found = ", ".join(p.name for p in indexes)
        raise InputError(directory, None, f"several checkpoints ({found}): pass one prefix")
    return indexes[0].with_suffix("")


def _google_files(directory: Path, prefix: Path) -> CheckpointFiles:
    config = directory / GOOGLE_CONFIG
    if not config.exists():
        raise InputError(config, None, "missing (every Google BERT checkpoint has one)")
    if not Path(f"{prefix}.index").exists():
        raise InputError(f"{prefix}.index", None, "missing checkpoint index file")
    if not list(directory.glob(f"{prefix.name}.data-*")):
        raise InputError(f"{prefix}.data-00000-of-00001", None, "missing checkpoint data file")
    return CheckpointFiles("google", config, prefix, _vocab(directory))


def _huggingface_files(directory: Path) -> CheckpointFiles:
    if not any((directory / name).exists() for name in HF_WEIGHTS):
        if (directory / "pytorch_model.bin").exists():
            raise InputError(
                directory / "pytorch_model.bin",
                None,
                "kner reads Hugging Face weights only as safetensors; convert "
                'once with: python -c "from transformers import BertModel; '
                f"BertModel.from_pretrained('{directory}').save_pretrained("
                f"'{directory}', safe_serialization=True)\"",
            )
        raise InputError(directory / HF_WEIGHTS[0], None, "missing weights file")
    return CheckpointFiles("huggingface", directory / HF_CONFIG, directory, _vocab(directory))


def _vocab(directory: Path) -> Path | None:
    vocab = directory / VOCAB
    return vocab if vocab.exists() else None


def read_bert_config(path: str | Path) -> dict:
    """Reads and checks a Google `bert_config.json` (or HF `config.json`)."""
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(path, None, "config file not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(path, None, f"not a JSON config: {e}") from None
    return _check_config(config, path)


def _check_config(config: Mapping, where: str | Path) -> dict:
    if not isinstance(config, Mapping):
        raise InputError(where, None, "config is not a JSON object")
    missing = [key for key in CONFIG_KEYS if key not in config]
    if missing:
        raise InputError(where, None, f"config lacks {', '.join(missing)}")
    if config["hidden_act"] != "gelu":
        raise InputError(where, None, f"hidden_act {config['hidden_act']!r} unsupported (gelu)")
    if config["hidden_size"] % config["num_attention_heads"]:
        raise InputError(
            where,
            None,
            f"hidden_size {config['hidden_size']} is not divisible by "
            f"num_attention_heads {config['num_attention_heads']}",
        )
    return dict(config)


def backbone_from_config(
    config: str | Path | Mapping,
) -> keras_hub.models.BertBackbone:
    """A randomly initialised backbone shaped by a Google `bert_config.json`.

    keras-hub has one dropout rate for hidden and attention dropout; it is
    set to `hidden_dropout_prob` (a warning is logged when the two differ).

    >>> backbone_from_config("chinese_L-12_H-768_A-12/bert_config.json")
    """
    if isinstance(config, Mapping):
        config = _check_config(config, "bert_config")
    else:
        config = read_bert_config(config)
    if config["attention_probs_dropout_prob"] != config["hidden_dropout_prob"]:
        logging.warning(
            "keras-hub BERT has one dropout rate: using hidden_dropout_prob=%s "
            "for attention too (attention_probs_dropout_prob=%s)",
            config["hidden_dropout_prob"],
            config["attention_probs_dropout_prob"],
        )
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=config["vocab_size"],
        num_layers=config["num_hidden_layers"],
        num_heads=config["num_attention_heads"],
        hidden_dim=config["hidden_size"],
        intermediate_dim=config["intermediate_size"],
        dropout=config["hidden_dropout_prob"],
        max_sequence_length=config["max_position_embeddings"],
        num_segments=config["type_vocab_size"],
    )
    stddev = config["initializer_range"]
    if stddev != KERAS_HUB_INITIALIZER_RANGE:
        initializer = keras.initializers.TruncatedNormal(stddev=stddev)
        for weight in _weight_table(backbone):
            if weight.name.endswith(("kernel", "embeddings")):
                weight.variable.assign(initializer(weight.variable.shape))
    return backbone


def bert_config_from_backbone(backbone: keras_hub.models.BertBackbone) -> dict:
    """The Google `bert_config.json` contents describing `backbone`."""
    return {
        "attention_probs_dropout_prob": backbone.dropout,
        "hidden_act": "gelu",
        "hidden_dropout_prob": backbone.dropout,
        "hidden_size": backbone.hidden_dim,
        "initializer_range": KERAS_HUB_INITIALIZER_RANGE,
        "intermediate_size": backbone.intermediate_dim,
        "max_position_embeddings": backbone.max_sequence_length,
        "num_attention_heads": backbone.num_heads,
        "num_hidden_layers": backbone.num_layers,
        "type_vocab_size": backbone.num_segments,
        "vocab_size": backbone.vocabulary_size,
    }


def _weight_table(backbone: keras_hub.models.BertBackbone) -> list[_Weight]:
    """Every backbone weight with its Google name and shape."""
    hidden = backbone.hidden_dim
    table = []

    def add(name, variable, shape=None):
        table.append(_Weight(name, variable, tuple(shape or variable.shape)))

    def dense(name, layer):
        add(f"{name}/kernel", layer.kernel)
        add(f"{name}/bias", layer.bias)

    def layer_norm(name, layer):
        add(f"{name}/gamma", layer.gamma)
        add(f"{name}/beta", layer.beta)

    embeddings = "bert/embeddings"
    add(f"{embeddings}/word_embeddings", backbone.token_embedding.embeddings)
    add(
        f"{embeddings}/position_embeddings",
        backbone.position_embedding.position_embeddings,
    )
    add(f"{embeddings}/token_type_embeddings", backbone.segment_embedding.embeddings)
    layer_norm(f"{embeddings}/LayerNorm", backbone.embeddings_layer_norm)
    for i, block in enumerate(backbone.transformer_layers):
        prefix = f"bert/encoder/layer_{i}"
        attention = block._self_attention_layer
        for part in ("query", "key", "value"):
            projection = getattr(attention, f"{part}_dense")
            name = f"{prefix}/attention/self/{part}"
            add(f"{name}/kernel", projection.kernel, (hidden, hidden))
            add(f"{name}/bias", projection.bias, (hidden,))
        name = f"{prefix}/attention/output/dense"
        add(f"{name}/kernel", attention.output_dense.kernel, (hidden, hidden))
        add(f"{name}/bias", attention.output_dense.bias)
        layer_norm(f"{prefix}/attention/output/LayerNorm", block._self_attention_layer_norm)
        dense(f"{prefix}/intermediate/dense", block._feedforward_intermediate_dense)
        dense(f"{prefix}/output/dense", block._feedforward_output_dense)
        layer_norm(f"{prefix}/output/LayerNorm", block._feedforward_layer_norm)
    dense("bert/pooler/dense", backbone.pooled_dense)
    return table


def is_ignored(name: str) -> bool:
    """Whether a checkpoint variable is not a backbone weight (heads, slots)."""
    return not name.startswith("bert/") or name.endswith(("/adam_m", "/adam_v"))


def read_variables(prefix: str | Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """Name -> (shape, dtype name) of every variable in a TF checkpoint."""
    reader = _reader(prefix)
    dtypes = reader.get_variable_to_dtype_map()
    return {
        name: (tuple(shape), dtypes[name].name) for name, shape in sorted(reader.get_variable_to_shape_map().items())
    }


def _reader(prefix: str | Path) -> tf.train.CheckpointReader:
    try:
        return tf.train.load_checkpoint(str(prefix))
    except (tf.errors.OpError, ValueError) as e:
        message = getattr(e, "message", str(e)).splitlines()[0]
        raise InputError(prefix, None, f"unreadable checkpoint: {message}") from None


def load_backbone(path: str | Path, max_seq_length: int | None = None) -> keras_hub.models.BertBackbone:
    """Loads a Google TF1 or Hugging Face BERT checkpoint (see module doc).

    `max_seq_length` is only checked against `max_position_embeddings`; the
    position table is kept whole.

    >>> backbone = load_backbone("chinese-roberta-wwm-ext", max_seq_length=256)
    """
    files = locate_checkpoint(path)
    config = read_bert_config(files.config)
    if max_seq_length is not None and max_seq_length > config["max_position_embeddings"]:
        raise InputError(
            files.config,
            None,
            f"max_seq_length {max_seq_length} exceeds the checkpoint's "
            f"max_position_embeddings {config['max_position_embeddings']}",
        )
    if files.vocab is not None:
        size = len(read_vocab(files.vocab))
        if size != config["vocab_size"]:
            raise InputError(
                files.vocab,
                None,
                f"has {size} entries but {files.config.name} says vocab_size={config['vocab_size']}",
            )
    if files.format == "huggingface":
        return _load_huggingface(files, config)
    backbone = backbone_from_config(config)
    _assign_google(backbone, files)
    return backbone


def _load_huggingface(files: CheckpointFiles, config: dict) -> keras_hub.models.BertBackbone:
    if config.get("model_type") != "bert":
        raise InputError(files.config, None, f"model_type {config.get('model_type')!r} is not 'bert'")
    try:
        from safetensors import SafetensorError
    except ImportError:
        raise InputError(files.weights, None, "reading it needs: pip install safetensors") from None
    try:
        return keras_hub.models.BertBackbone.from_preset(str(files.weights))
    except (SafetensorError, ValueError, KeyError, OSError) as e:
        message = str(e).splitlines()[0]
        raise InputError(files.weights, None, f"keras-hub cannot load it: {message}") from None


def _assign_google(backbone: keras_hub.models.BertBackbone, files: CheckpointFiles) -> None:
    reader = _reader(files.weights)
    shapes = reader.get_variable_to_shape_map()
    config_name = files.config.name
    layers = {int(m.group(1)) for name in shapes if (m := _LAYER.match(name))}
    if len(layers) != backbone.num_layers:
        raise InputError(
            files.weights,
            None,
            f"{config_name} says num_hidden_layers={backbone.num_layers} but the "
            f"checkpoint has {len(layers)} encoder layers",
        )
    table = _weight_table(backbone)
    known = {weight.name for weight in table}
    for name in sorted(shapes):
        if not is_ignored(name) and name not in known:
            raise InputError(files.weights, None, f"unknown BERT variable {name}")
    for weight in table:
        if weight.name not in shapes:
            raise InputError(files.weights, None, f"checkpoint lacks variable {weight.name}")
        if tuple(shapes[weight.name]) != weight.shape:
            raise InputError(
                files.weights,
                None,
                f"variable {weight.name} has shape {list(shapes[weight.name])} but "
                f"{config_name} implies {list(weight.shape)}",
            )
    for weight in table:
        value = reader.get_tensor(weight.name).astype("float32")
        weight.variable.assign(value.reshape(weight.variable.shape))


def save_google_checkpoint(
    backbone: keras_hub.models.BertBackbone,
    path: str | Path,
    vocab_file: str | Path | None = None,
) -> Path:
    """Writes `path/bert_model.ckpt.*` and `path/bert_config.json` in Google's
    format (Google's variable names and shapes, float32), plus `vocab.txt`
    when `vocab_file` is given. Returns the checkpoint prefix.

    >>> save_google_checkpoint(backbone, "exported", vocab_file="vocab.txt")
    PosixPath('exported/bert_model.ckpt')
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    table = _weight_table(backbone)
    prefix = path / GOOGLE_PREFIX
    tf.raw_ops.SaveV2(
        prefix=str(prefix),
        tensor_names=[weight.name for weight in table],
        shape_and_slices=[""] * len(table),
        tensors=[np.reshape(w.variable.numpy(), w.shape).astype("float32") for w in table],
    )
    config = bert_config_from_backbone(backbone)
    (path / GOOGLE_CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    if vocab_file is not None:
        shutil.copyfile(vocab_file, path / VOCAB)
    return prefix


def inspect(path: str | Path) -> None:
    """Prints what `path` holds, then loads it (raising `InputError` if it
    cannot be loaded)."""
    files = locate_checkpoint(path)
    print(f"format: {files.format} ({files.weights})")
    print(f"config: {files.config}")
    for key, value in sorted(read_bert_config(files.config).items()):
        print(f"  {key}: {value}")
    print(f"vocab: {files.vocab or 'none (kner then needs a vocab.txt given separately)'}")
    if files.format == "google":
        variables = read_variables(files.weights)
        ignored = sum(is_ignored(name) for name in variables)
        print(f"variables: {len(variables)} ({ignored} ignored: heads, optimizer slots)")
        for name, (shape, dtype) in variables.items():
            mark = "  (ignored)" if is_ignored(name) else ""
            print(f"  {name} {list(shape)} {dtype}{mark}")
    backbone = load_backbone(path)
    print(
        f"kner can load it: BertBackbone with {backbone.num_layers} layers, hidden "
        f"{backbone.hidden_dim}, {backbone.num_heads} heads, "
        f"{backbone.count_params():,} parameters"
    )


def main(argv: list[str]) -> None:
    if len(argv) != 3 or argv[1] != "inspect":
        raise app.UsageError("usage: python -m kner.checkpoint inspect PATH")
    inspect(argv[2])


if __name__ == "__main__":
    run_cli(main)
