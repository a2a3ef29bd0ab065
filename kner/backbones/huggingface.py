"""Hugging Face BERT directories (`config.json` + `model.safetensors`),
read through keras-hub's own converter, and written back as a
`BertForTokenClassification` with a tagger's classifier (and CRF scores).
`pytorch_model.bin` is not read (that needs torch); the error says how to
convert it once.

The names and shapes written are those of transformers' `BertModel`
(`modeling_bert.py`) under `bert.`, a PyTorch `Linear` storing its weight as
[out, in]: keras-hub's converter (`keras_hub/src/utils/transformers/
convert_bert.py`) read backwards. keras-hub computes GELU in its tanh form,
so the config says `gelu_pytorch_tanh`, under which transformers computes
the same function (its `"gelu"` is the erf form).

Example:

```python
backbone = load_huggingface_bert(Path("chinese-roberta-wwm-ext"), config, config_path)
save_token_classifier(backbone, Path("hf_tagger"), vocabulary, tags, (kernel, bias))
```
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import keras_hub
import numpy as np

from kner.backbones import bert
from kner.backbones.weight_table import arrays
from kner.data.files import atomic_output, write_text
from kner.data.tokenizer import save_vocab
from kner.errors import InputError

HF_CONFIG = "config.json"
HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
HF_VOCAB = "vocab.txt"
# transformers' name of the tanh form of GELU that keras-hub's BERT computes.
HF_TANH_GELU = "gelu_pytorch_tanh"
# Tensors beside the model's that transformers does not read (a CRF's scores).
EXTRA_WEIGHTS = "extra.safetensors"


def check_weights(directory: Path) -> None:
    """InputError unless `directory` holds safetensors weights."""
    if any((directory / name).exists() for name in HF_WEIGHTS):
        return
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


def load_huggingface_bert(directory: Path, config: dict, config_path: Path) -> keras_hub.models.BertBackbone:
    """A `BertBackbone` from a Hugging Face BERT directory whose (checked)
    `config.json` is `config`."""
    if config.get("model_type") != "bert":
        raise InputError(config_path, None, f"model_type {config.get('model_type')!r} is not 'bert'")
    try:
        from safetensors import SafetensorError
    except ImportError:
        raise InputError(directory, None, "reading it needs: pip install safetensors") from None
    try:
        return keras_hub.models.BertBackbone.from_preset(str(directory))
    except (SafetensorError, ValueError, KeyError, OSError) as e:
        message = str(e).splitlines()[0]
        raise InputError(directory, None, f"keras-hub cannot load it: {message}") from None


def huggingface_name(google_name: str) -> str:
    """transformers' `BertModel` name of a Google BERT variable, under `bert.`:
    `bert/encoder/layer_0/attention/self/query/kernel` ->
    `bert.encoder.layer.0.attention.self.query.weight`."""
    name = google_name.replace("/", ".").replace(".layer_", ".layer.")
    for google, hf in ((".kernel", ".weight"), (".gamma", ".weight"), (".beta", ".bias")):
        if name.endswith(google):
            return name[: -len(google)] + hf
    return name + ".weight" if name.endswith("_embeddings") else name


# transformers' `BertLMPredictionHead` (`BertForMaskedLM`, `BertForPreTraining`) under Google's
# `cls/predictions` names; older conversions name the LayerNorm's weight and bias gamma and beta.
MASKED_LM_HEAD = {
    "cls/predictions/transform/dense/kernel": ("cls.predictions.transform.dense.weight",),
    "cls/predictions/transform/dense/bias": ("cls.predictions.transform.dense.bias",),
    "cls/predictions/transform/LayerNorm/gamma": (
        "cls.predictions.transform.LayerNorm.weight",
        "cls.predictions.transform.LayerNorm.gamma",
    ),
    "cls/predictions/transform/LayerNorm/beta": (
        "cls.predictions.transform.LayerNorm.bias",
        "cls.predictions.transform.LayerNorm.beta",
    ),
    "cls/predictions/output_bias": ("cls.predictions.bias", "cls.predictions.decoder.bias"),
}


def _tensor_files(directory: Path) -> dict[str, Path]:
    """Tensor name -> the safetensors file holding it (one file, or the
    shards of `model.safetensors.index.json`)."""
    index = directory / HF_WEIGHTS[1]
    if index.exists():
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        return {name: directory / file for name, file in weight_map.items()}
    from safetensors import safe_open

    path = directory / HF_WEIGHTS[0]
    with safe_open(str(path), framework="numpy") as tensors:
        return dict.fromkeys(tensors.keys(), path)


def _head_names(files: Mapping[str, Path]) -> dict[str, str]:
    """Google name -> the directory's name of each masked-LM head tensor it has."""
    found = {}
    for google, names in MASKED_LM_HEAD.items():
        present = [name for name in names if name in files]
        if present:
            found[google] = present[0]
    return found


def has_masked_lm_head(directory: Path) -> bool:
    """Whether a Hugging Face BERT directory holds any `cls.predictions.*` tensor."""
    return bool(_head_names(_tensor_files(directory)))


def read_masked_lm_head(directory: Path) -> dict[str, np.ndarray]:
    """The masked-LM head of a Hugging Face BERT directory
    (`cls.predictions.*`) under Google's `cls/predictions/*` names and
    shapes (the dense kernel as [in, out]), float32. InputError naming a
    missing tensor."""
    from safetensors import safe_open

    files = _tensor_files(directory)
    names = _head_names(files)
    for google, candidates in MASKED_LM_HEAD.items():
        if google not in names:
            raise InputError(directory, None, f"masked-LM head without {candidates[0]}")
    arrays = {}
    for google, name in names.items():
        with safe_open(str(files[name]), framework="numpy") as tensors:
            value = np.asarray(tensors.get_tensor(name), np.float32)
        arrays[google] = value.T if google.endswith("kernel") else value
    return arrays


def save_token_classifier(
    backbone: keras_hub.models.BertBackbone,
    directory: Path,
    vocabulary: list[str],
    tags: list[str],
    classifier: tuple[np.ndarray, np.ndarray],
    extra_weights: Mapping[str, np.ndarray] | None = None,
    extra_config: Mapping | None = None,
) -> Path:
    """Writes a transformers `BertForTokenClassification` directory:
    `config.json` (the backbone's shape, `id2label` from `tags`, plus
    `extra_config`), `model.safetensors` (the backbone with its pooler, and
    `classifier.weight` [tags, hidden], `classifier.bias` [tags], all float32)
    and `vocab.txt`; `extra_weights` (a CRF's transition scores, say), which
    transformers would not read, go to `extra.safetensors`. Returns
    `directory`. `BertForTokenClassification.from_pretrained(directory)`
    loads it (ignoring the pooler, as for any BERT checkpoint) and so does
    `kner.checkpoint.load_backbone` (the backbone).

    Args:
        backbone: the encoder.
        directory: where to write (created if missing).
        vocabulary: the tokens of `vocab.txt`, by id.
        tags: the tag of each classifier output.
        classifier: kernel [hidden, tags] and bias [tags] of the tag projection.
    """
    from safetensors.numpy import save as safetensors_bytes

    kernel, bias = (np.asarray(value, np.float32) for value in classifier)
    if kernel.shape != (backbone.hidden_dim, len(tags)) or bias.shape != (len(tags),):
        raise ValueError(
            f"classifier kernel {kernel.shape} and bias {bias.shape} do not fit hidden size "
            f"{backbone.hidden_dim} and {len(tags)} tags"
        )
    tensors = {}
    for name, value in arrays(bert.weight_table(backbone)).items():
        tensors[huggingface_name(name)] = value.T if name.endswith("kernel") else value
    tensors["classifier.weight"], tensors["classifier.bias"] = kernel.T, bias
    config = {
        **bert.bert_config_from_backbone(backbone),
        "hidden_act": HF_TANH_GELU,
        "layer_norm_eps": 1e-12,
        "model_type": "bert",
        "architectures": ["BertForTokenClassification"],
        "id2label": dict(enumerate(tags)),
        "label2id": {tag: i for i, tag in enumerate(tags)},
        **(extra_config or {}),
    }
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)

    def write_tensors(name: str, values: Mapping[str, np.ndarray]) -> None:
        contiguous = {key: np.ascontiguousarray(value, np.float32) for key, value in values.items()}
        with atomic_output(directory / name, "wb") as out:
            out.write(safetensors_bytes(contiguous, metadata={"format": "pt"}))

    write_tensors(HF_WEIGHTS[0], tensors)
    if extra_weights:
        write_tensors(EXTRA_WEIGHTS, extra_weights)
    write_text(directory / HF_CONFIG, json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    save_vocab(vocabulary, directory / HF_VOCAB)
    return directory
