"""Finding, loading, writing back and inspecting a backbone checkpoint.

Reads the formats users download:

- Google TF1 checkpoints (`chinese_L-12_H-768_A-12`, HFL `chinese-bert-wwm-ext`,
  `chinese-roberta-wwm-ext(-large)`, RBT3, ...): a directory with
  `bert_config.json`, `bert_model.ckpt.index` / `.data-*` and `vocab.txt`, or
  the checkpoint prefix `dir/bert_model.ckpt` (`kner.backbones.bert`).
- Hugging Face directories (`config.json` + `model.safetensors`), through
  keras-hub's own converter (`kner.backbones.huggingface`).

The position table is kept whole: a checkpoint with
`max_position_embeddings=512` gives a backbone that takes any length up to
512, whatever `max_seq_length` is; `max_seq_length` is only checked against
it.

`save_google_checkpoint` writes a backbone back in Google's format, with
Google's variable names, so that TF1 code, `transformers` conversion scripts
and this module read it.

Example:

```python
backbone = load_backbone("chinese_L-12_H-768_A-12", max_seq_length=128)
save_google_checkpoint(backbone, "exported", vocab_file="vocab.txt")
```
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import keras_hub

from kner.backbones import bert, huggingface, tf1_checkpoint
from kner.data.tokenizer import read_vocab
from kner.errors import InputError

VOCAB = "vocab.txt"


@dataclasses.dataclass(frozen=True)
class CheckpointFiles:
    """Where a checkpoint's parts are. `format` is "google" or "huggingface";
    `weights` is the TF checkpoint prefix or the Hugging Face directory."""

    format: str
    config: Path
    weights: Path
    vocab: Path | None


def locate_checkpoint(path: str | Path) -> CheckpointFiles:
    """Finds config, weights and vocab of a Google or Hugging Face checkpoint.

    >>> locate_checkpoint("chinese_L-12_H-768_A-12").weights
    PosixPath('chinese_L-12_H-768_A-12/bert_model.ckpt')
    """
    path = Path(path)
    if path.is_dir():
        if (path / bert.GOOGLE_CONFIG).exists() or list(path.glob("*.ckpt*.index")):
            return _google_files(path, tf1_checkpoint.find_prefix(path, bert.GOOGLE_PREFIX))
        if (path / huggingface.HF_CONFIG).exists():
            huggingface.check_weights(path)
            return CheckpointFiles("huggingface", path / huggingface.HF_CONFIG, path, _vocab(path))
        raise InputError(
            path,
            None,
            f"not a BERT checkpoint directory: expected {bert.GOOGLE_CONFIG} + "
            f"{bert.GOOGLE_PREFIX}.index (Google) or {huggingface.HF_CONFIG} + "
            f"{huggingface.HF_WEIGHTS[0]} (Hugging Face)",
        )
    prefix = tf1_checkpoint.checkpoint_prefix(path)
    if not Path(f"{prefix}.index").exists():
        raise InputError(path, None, "no such checkpoint directory or prefix")
    return _google_files(prefix.parent, prefix)


def _google_files(directory: Path, prefix: Path) -> CheckpointFiles:
    config = directory / bert.GOOGLE_CONFIG
    if not config.exists():
        raise InputError(config, None, "missing (every Google BERT checkpoint has one)")
    tf1_checkpoint.check_shards(prefix)
    return CheckpointFiles("google", config, prefix, _vocab(directory))


def _vocab(directory: Path) -> Path | None:
    vocab = directory / VOCAB
    return vocab if vocab.exists() else None


def load_backbone(path: str | Path, max_seq_length: int | None = None) -> keras_hub.models.BertBackbone:
    """Loads a Google TF1 or Hugging Face BERT checkpoint (see module doc).

    `max_seq_length` is only checked against `max_position_embeddings`; the
    position table is kept whole.

    >>> backbone = load_backbone("chinese-roberta-wwm-ext", max_seq_length=256)
    """
    files = locate_checkpoint(path)
    config = bert.read_bert_config(files.config)
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
        return huggingface.load_huggingface_bert(files.weights, config, files.config)
    backbone = bert.backbone_from_config(config)
    bert.assign_google_weights(backbone, files.weights, files.config.name)
    return backbone


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
    prefix = tf1_checkpoint.write_variables(path / bert.GOOGLE_PREFIX, bert.google_variables(backbone))
    bert.write_bert_config(backbone, path)
    if vocab_file is not None:
        shutil.copyfile(vocab_file, path / VOCAB)
    return prefix


def inspect(path: str | Path) -> None:
    """Prints what `path` holds, then loads it (raising `InputError` if it
    cannot be loaded)."""
    files = locate_checkpoint(path)
    print(f"format: {files.format} ({files.weights})")
    print(f"config: {files.config}")
    for key, value in sorted(bert.read_bert_config(files.config).items()):
        print(f"  {key}: {value}")
    print(f"vocab: {files.vocab or 'none (kner then needs a vocab.txt given separately)'}")
    if files.format == "google":
        variables = tf1_checkpoint.read_variables(files.weights)
        ignored = sum(bert.is_ignored(name) for name in variables)
        print(f"variables: {len(variables)} ({ignored} ignored: heads, optimizer slots)")
        for name, (shape, dtype) in variables.items():
            mark = "  (ignored)" if bert.is_ignored(name) else ""
            print(f"  {name} {list(shape)} {dtype}{mark}")
    backbone = load_backbone(path)
    print(
        f"kner can load it: BertBackbone with {backbone.num_layers} layers, hidden "
        f"{backbone.hidden_dim}, {backbone.num_heads} heads, "
        f"{backbone.count_params():,} parameters"
    )
