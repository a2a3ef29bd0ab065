"""Finding, loading, writing back and inspecting a backbone checkpoint.

Reads the formats users download:

- Google TF1 checkpoints, the family recognised from the variable names:
  - **BERT** (`bert/encoder/layer_N/...`: Google's `chinese_L-12_H-768_A-12`,
    HFL's `chinese-bert-wwm-ext`, `chinese-roberta-wwm-ext(-large)`, RBT3,
    ...; `bert_config.json`), `kner.backbones.bert`;
  - **ALBERT**, Google's layout (`bert/encoder/transformer/group_G/...`:
    `albert_*_zh`, brightmart's `*_google` releases; `albert_config.json`)
    and brightmart's (`bert/encoder/layer_shared/...`: `albert_tiny_zh` ...;
    `albert_config_<size>.json`), `kner.backbones.albert`;
  - **ELECTRA** discriminators (`electra/...`: HFL's Chinese ELECTRA;
    `discriminator.json`), `kner.backbones.electra`.

  A directory (the prefix is found from its one `.index` file: the releases
  name it differently and not all have a `checkpoint` state file) or the
  prefix itself; the vocab is `vocab.txt` or `vocab_chinese.txt`.
- Hugging Face BERT directories (`config.json` + `model.safetensors`),
  through keras-hub's converter (`kner.backbones.huggingface`).
- keras-hub preset directories (`config.json` + `model.weights.h5`),
  `kner.backbones.keras_hub_preset`.

The position table is kept whole: a checkpoint with
`max_position_embeddings=512` gives a backbone that takes any length up to
512, whatever `max_seq_length` is; `max_seq_length` is only checked against
it.

`save_google_checkpoint` writes a backbone back in its family's own layout
(names, shapes, config file), so that TF1 code, `transformers` conversion
scripts and this module read it. `backbone_config` is the config a trained
model_dir keeps (`bert_config.json`); `backbone_from_config` rebuilds the
same family from it (non-BERT configs carry `"kner_layout"`).

Example:

```python
backbone = load_backbone("albert_tiny_zh_google", max_seq_length=128)
save_google_checkpoint(backbone, "exported", vocab_file="vocab.txt")
```
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import keras_hub
from absl import logging

from kner.backbones import (
    albert,
    bert,
    bert_heads,
    electra,
    electra_heads,
    huggingface,
    keras_hub_preset,
    tf1_checkpoint,
)
from kner.backbones.config_file import read_json
from kner.backbones.encoder import EncoderBackbone
from kner.backbones.weight_table import Weight, arrays, ignored_summary
from kner.data.files import write_text
from kner.data.tokenizer import read_vocab
from kner.errors import InputError

VOCABS = ("vocab.txt", "vocab_chinese.txt")
LAYOUT_KEY = "kner_layout"
KERAS_HUB = "keras_hub"


@dataclasses.dataclass(frozen=True)
class Family:
    """One Google-layout checkpoint family: its files and its functions."""

    name: str
    config_names: tuple[str, ...]  # Globs, in order; the first is what `save_google_checkpoint` writes.
    prefix: str  # The checkpoint prefix `save_google_checkpoint` writes.
    vocab: str  # The vocab file name `save_google_checkpoint` writes.
    missing_config: str  # The error when no config file is found.
    check_config: Callable[[Mapping, str | Path], dict]
    from_config: Callable[[Mapping], keras_hub.models.Backbone]  # From a checked config.
    config_of: Callable[[keras_hub.models.Backbone], dict]
    assign: Callable[[keras_hub.models.Backbone, Path, str], None]
    weight_table: Callable[[keras_hub.models.Backbone], list[Weight]]
    is_ignored: Callable[[str], bool]


_ALBERT_CONFIGS = (albert.CONFIG_NAME, "albert_config*.json")
_ALBERT_MISSING = "missing (Google's ALBERT ships albert_config.json, brightmart's albert_config_<size>.json)"
FAMILIES = {
    "bert": Family(
        "bert",
        (bert.GOOGLE_CONFIG,),
        bert.GOOGLE_PREFIX,
        "vocab.txt",
        "missing (every Google BERT checkpoint has one)",
        bert.check_config,
        bert.backbone_from_config,
        bert.bert_config_from_backbone,
        bert.assign_google_weights,
        bert.weight_table,
        bert.is_ignored,
    ),
    **{
        layout: Family(
            layout,
            _ALBERT_CONFIGS,
            albert.PREFIXES[layout],
            albert.VOCABS[layout],
            _ALBERT_MISSING,
            albert.check_config,
            lambda config, layout=layout: albert.backbone_from_config(config, layout),
            albert.config_from_backbone,
            albert.assign,
            albert.weight_table,
            albert.is_ignored,
        )
        for layout in (albert.GOOGLE, albert.BRIGHTMART)
    },
    "electra": Family(
        "electra",
        (electra.CONFIG_NAME,),
        electra.PREFIX,
        electra.VOCAB,
        electra.MISSING_CONFIG,
        electra.check_config,
        electra.backbone_from_config,
        electra.config_from_backbone,
        electra.assign,
        electra.weight_table,
        electra.is_ignored,
    ),
}


@dataclasses.dataclass(frozen=True)
class CheckpointFiles:
    """Where a checkpoint's parts are. `format` is "google", "huggingface" or
    "keras_hub"; `weights` is the TF checkpoint prefix or the directory;
    `family` is a key of `FAMILIES` for "google", else the format."""

    format: str
    config: Path
    weights: Path
    vocab: Path | None
    family: str = "bert"


def detect_family(names: list[str], prefix: Path) -> str:
    """The `FAMILIES` key of a TF1 checkpoint with variables `names`."""
    if any(name.startswith("electra/encoder/") for name in names):
        return "electra"
    if any(name.startswith("bert/encoder/transformer/") for name in names):
        return albert.GOOGLE
    if any(name.startswith("bert/encoder/layer_shared/") for name in names):
        return albert.BRIGHTMART
    if any(name.startswith("bert/") for name in names):
        return "bert"
    raise InputError(
        prefix,
        None,
        "no encoder variables: expected bert/encoder/layer_N (BERT), bert/encoder/transformer or "
        "bert/encoder/layer_shared (ALBERT) or electra/encoder (ELECTRA)",
    )


def locate_checkpoint(path: str | Path) -> CheckpointFiles:
    """Finds config, weights and vocab of a checkpoint (module doc).

    >>> locate_checkpoint("chinese_L-12_H-768_A-12").weights
    PosixPath('chinese_L-12_H-768_A-12/bert_model.ckpt')
    """
    path = Path(path)
    if path.is_dir():
        if keras_hub_preset.is_preset(path):
            return CheckpointFiles(
                KERAS_HUB, path / keras_hub_preset.CONFIG, path, keras_hub_preset.vocab_file(path), KERAS_HUB
            )
        configs = [family for family in FAMILIES.values() if _config_file(path, family)]
        if configs or list(path.glob("*.index")):
            preferred = configs[0].prefix if configs else bert.GOOGLE_PREFIX
            return _google_files(path, tf1_checkpoint.find_prefix(path, preferred))
        if (path / huggingface.HF_CONFIG).exists():
            huggingface.check_weights(path)
            return CheckpointFiles("huggingface", path / huggingface.HF_CONFIG, path, _vocab(path), "huggingface")
        raise InputError(
            path,
            None,
            f"not a checkpoint directory: expected a Google TF1 checkpoint ({bert.GOOGLE_CONFIG}, "
            f"{albert.CONFIG_NAME} or {electra.CONFIG_NAME} + *.index/.data-*), a Hugging Face directory "
            f"({huggingface.HF_CONFIG} + {huggingface.HF_WEIGHTS[0]}) or a keras-hub preset "
            f"({keras_hub_preset.CONFIG} + {keras_hub_preset.WEIGHTS})",
        )
    prefix = tf1_checkpoint.checkpoint_prefix(path)
    if not Path(f"{prefix}.index").exists():
        raise InputError(path, None, "no such checkpoint directory or prefix")
    return _google_files(prefix.parent, prefix)


def _config_file(directory: Path, family: Family) -> Path | None:
    for pattern in family.config_names:
        found = sorted(directory.glob(pattern))
        if found:
            return found[0]
    return None


def _google_files(directory: Path, prefix: Path) -> CheckpointFiles:
    tf1_checkpoint.check_shards(prefix)
    names = list(tf1_checkpoint.reader(prefix).get_variable_to_shape_map())
    family = FAMILIES[detect_family(names, prefix)]
    config = _config_file(directory, family)
    if config is None:
        raise InputError(directory / family.config_names[0], None, family.missing_config)
    return CheckpointFiles("google", config, prefix, _vocab(directory), family.name)


def _vocab(directory: Path) -> Path | None:
    return next((directory / name for name in VOCABS if (directory / name).exists()), None)


def _check_sizes(files: CheckpointFiles, max_seq_length: int | None, positions: int, vocab_size: int) -> None:
    if max_seq_length is not None and max_seq_length > positions:
        raise InputError(
            files.config,
            None,
            f"max_seq_length {max_seq_length} exceeds the checkpoint's max_position_embeddings {positions}",
        )
    if files.vocab is not None:
        size = len(read_vocab(files.vocab))
        if size != vocab_size:
            raise InputError(
                files.vocab, None, f"has {size} entries but {files.config.name} says vocab_size={vocab_size}"
            )


def load_backbone(path: str | Path, max_seq_length: int | None = None) -> keras_hub.models.Backbone:
    """Loads a checkpoint of any supported family (module doc): a keras-hub
    `BertBackbone` for BERT, an `EncoderBackbone` for ALBERT and ELECTRA, the
    preset's own class for a keras-hub preset.

    `max_seq_length` is only checked against `max_position_embeddings`; the
    position table is kept whole.

    >>> backbone = load_backbone("chinese-roberta-wwm-ext", max_seq_length=256)
    """
    files = locate_checkpoint(path)
    backbone = _load(files, max_seq_length)
    ignored = ""
    if files.format == "google":  # what the checkpoint holds beyond the backbone, by scope
        names = list(tf1_checkpoint.read_variables(files.weights))
        ignored = f"; {len(names)} variables, {ignored_summary(names, FAMILIES[files.family].is_ignored)}"
    logging.info("loaded %s checkpoint %s: %s%s", files.family, files.weights, describe(backbone), ignored)
    return backbone


def _load(files: CheckpointFiles, max_seq_length: int | None) -> keras_hub.models.Backbone:
    if files.format == KERAS_HUB:
        backbone = keras_hub_preset.load_preset(files.weights)
        size = keras_hub_preset.vocabulary_size(backbone)
        _check_sizes(files, max_seq_length, backbone.max_sequence_length, size)
        return backbone
    if files.format == "huggingface":
        config = bert.read_bert_config(files.config)
        _check_sizes(files, max_seq_length, config["max_position_embeddings"], config["vocab_size"])
        return huggingface.load_huggingface_bert(files.weights, config, files.config)
    family = FAMILIES[files.family]
    config = family.check_config(read_json(files.config), files.config)
    _check_sizes(files, max_seq_length, config["max_position_embeddings"], config["vocab_size"])
    backbone = family.from_config(config)
    family.assign(backbone, files.weights, files.config.name)
    return backbone


def family_of(backbone: keras_hub.models.Backbone) -> str:
    """The `FAMILIES` key of a backbone kner builds, else "keras_hub"."""
    if isinstance(backbone, keras_hub.models.BertBackbone):
        return "bert"
    if isinstance(backbone, EncoderBackbone):
        return backbone.layout
    return KERAS_HUB


def save_google_checkpoint(
    backbone: keras_hub.models.Backbone,
    path: str | Path,
    vocab_file: str | Path | None = None,
    heads: Sequence[Weight] = (),
    vocab_name: str | None = None,
    extra_files: Mapping[str, str] | None = None,
) -> Path:
    """Writes `backbone` in its family's original layout: the checkpoint
    (that family's variable names and shapes, float32) and config file under
    their usual names (BERT: `bert_model.ckpt`, `bert_config.json`; Google
    ALBERT: `model.ckpt-best`, `albert_config.json`; brightmart ALBERT:
    `albert_model.ckpt`, `albert_config.json`; ELECTRA: `electra_model`,
    `discriminator.json`), plus `heads` (pretraining heads under their
    checkpoint names, `kner.backbones.bert_heads`) in the same checkpoint,
    and the vocab when `vocab_file` is given, as `vocab_name` (default: the
    family's release name, `vocab.txt` or `vocab_chinese.txt`), and
    `extra_files` (name -> text: ELECTRA's `generator.json`).

    The files are written into a staging directory and moved into `path`
    only once complete, the checkpoint index last, so a reader never finds
    a half-written checkpoint. Returns the checkpoint prefix. ValueError for
    a backbone with no TF1 layout (a stock keras-hub `AlbertBackbone` or
    `ElectraBackbone`: use its `save_to_preset`).

    >>> save_google_checkpoint(backbone, "exported", vocab_file="vocab.txt")
    PosixPath('exported/bert_model.ckpt')
    """
    name = family_of(backbone)
    if name not in FAMILIES:
        raise ValueError(f"{type(backbone).__name__} has no TF1 checkpoint layout; use its save_to_preset()")
    family = FAMILIES[name]
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    variables = {**arrays(family.weight_table(backbone)), **arrays(list(heads))}
    staging = Path(tempfile.mkdtemp(prefix=f".{family.prefix}.", dir=path))
    try:
        tf1_checkpoint.write_variables(staging / family.prefix, variables)
        write_text(staging / family.config_names[0], json.dumps(family.config_of(backbone), indent=2) + "\n")
        if vocab_file is not None:
            shutil.copyfile(vocab_file, staging / (vocab_name or family.vocab))
        for name, text in (extra_files or {}).items():
            write_text(staging / name, text)
        for staged in sorted(os.listdir(staging), key=lambda file: file.endswith(".index")):
            os.replace(staging / staged, path / staged)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path / family.prefix


def backbone_config(backbone: keras_hub.models.Backbone) -> dict:
    """The config a model_dir keeps for `backbone`: its family's config file
    contents, with `"kner_layout"` for every family but BERT (so old
    model_dirs still read), or a keras-hub serialisation."""
    name = family_of(backbone)
    if name == KERAS_HUB:
        return {LAYOUT_KEY: KERAS_HUB, KERAS_HUB: keras_hub_preset.serialize(backbone)}
    config = FAMILIES[name].config_of(backbone)
    return config if name == "bert" else {**config, LAYOUT_KEY: name}


def backbone_from_config(config: str | Path | Mapping, where: str | Path = "bert_config") -> keras_hub.models.Backbone:
    """A randomly initialised backbone from a config file or dict:
    `backbone_config`'s output, or a family's own config (`bert_config.json`;
    `albert_config.json` and configs with `embedding_size` build Google's
    ALBERT; `"model_type": "electra"` an ELECTRA discriminator). `where`
    names a dict's source in errors.

    >>> backbone_from_config("chinese_L-12_H-768_A-12/bert_config.json")
    """
    if not isinstance(config, Mapping):
        where, config = config, read_json(config)
    layout = config.get(LAYOUT_KEY) or _guess_layout(config)
    if layout == KERAS_HUB:
        return keras_hub_preset.deserialize(config[KERAS_HUB])
    if layout not in FAMILIES:
        raise InputError(where, None, f"{LAYOUT_KEY} {layout!r} unknown ({', '.join([*FAMILIES, KERAS_HUB])})")
    config = {key: value for key, value in config.items() if key != LAYOUT_KEY}
    family = FAMILIES[layout]
    return family.from_config(family.check_config(config, where))


def _guess_layout(config: Mapping) -> str:
    if config.get("model_type") == "electra":
        return "electra"
    return albert.GOOGLE if "embedding_size" in config else "bert"


def describe(backbone: keras_hub.models.Backbone) -> str:
    """`"EncoderBackbone (albert layout) with 4 layers, ..."`."""
    name = type(backbone).__name__
    if isinstance(backbone, EncoderBackbone):
        groups = f"{backbone.num_groups} group(s) x {backbone.num_inner_repetitions}, "
        if backbone.layout == "electra":
            groups = ""
        name += f" ({backbone.layout} layout, embedding {backbone.embedding_dim}, {groups}{backbone.activation})"
    return (
        f"{name} with {backbone.num_layers} layers, hidden {backbone.hidden_dim}, "
        f"{backbone.num_heads} heads, {backbone.count_params():,} parameters"
    )


def inspect(path: str | Path) -> None:
    """Prints what `path` holds, then loads it (raising `InputError` if it
    cannot be loaded)."""
    files = locate_checkpoint(path)
    print(f"format: {files.format} ({files.weights})")
    print(f"family: {files.family}")
    print(f"config: {files.config}")
    config = read_json(files.config)
    for key, value in sorted(config.get("config", config).items()):
        print(f"  {key}: {value}")
    print(f"vocab: {files.vocab or 'none (kner then needs a vocab.txt given separately)'}")
    if files.format == "google":
        is_ignored = FAMILIES[files.family].is_ignored
        variables = tf1_checkpoint.read_variables(files.weights)
        print(f"variables: {len(variables)} ({ignored_summary(list(variables), is_ignored)})")
        for name, (shape, dtype) in variables.items():
            mark = "  (ignored)" if is_ignored(name) else ""
            print(f"  {name} {list(shape)} {dtype}{mark}")
        heads = [bert_heads.DESCRIPTIONS[head] for head in bert_heads.heads_in(variables)]
        heads += [electra_heads.DESCRIPTIONS[head] for head in electra_heads.heads_in(variables)]
        print(f"pretraining heads: {', '.join(heads) or 'none'} (kner.pretrain --init_checkpoint loads them)")
    print(f"kner can load it: {describe(load_backbone(path))}")
