"""The ONNX Runtime side of `bench/ort_serving.py`, set up as a team serving a
BERT tagger on CPU sets it up, carrying the kner model's own weights:

1. `write_huggingface`: the model_dir's backbone, classifier and CRF scores
   as a transformers `BertForTokenClassification` directory
   (`kner.backbones.huggingface.save_token_classifier`);
2. `export_onnx`: that model through PyTorch's TorchScript exporter
   (`torch.onnx.export(..., dynamo=False)`: ONNX Runtime's BERT fusions
   match its graphs), eager attention, dynamic batch and length;
3. `optimize`: ONNX Runtime's transformer optimizer (`model_type="bert"`),
   which fuses each layer's attention into one `Attention` op, each
   residual add + LayerNorm into `SkipLayerNormalization`, and the FFN's
   bias + GELU into `FastGelu` (the tanh form, which kner computes; the erf
   form would give `BiasGelu`); `FusionError` unless each count is right;
4. `quantize`: dynamic int8 (`quantize_dynamic`, QInt8 weights);
5. `OrtTagger`: a session (`intra_op_num_threads`, one inter-op thread,
   spinning on or off) behind `numpy_tagger`'s tokenizer and decoder, texts
   in, entities out.

Example:
>>> hf_dir = write_huggingface(model_dir, work / "hf")
>>> counts = optimize(export_onnx(hf_dir, work / "model.onnx"), work / "model_fp32.onnx", hf_dir)
>>> tagger = OrtTagger(work / "model_fp32.onnx", hf_dir, tokenizer, max_seq_length=128, threads=2, spinning=False)
>>> tagger(["浙商银行企业信贷部叶老桂博士"])
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from numpy_tagger import Decoder, Entity, encode_batch

from kner.backbones.huggingface import save_token_classifier

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OPSET = 17


class FusionError(RuntimeError):
    """ONNX Runtime's optimizer did not fuse the graph as expected."""


def write_huggingface(model_dir: Path, directory: Path) -> Path:
    """The trained tagger of `model_dir` (its best weights) as a
    `BertForTokenClassification` directory, its CRF's scores in
    `extra.safetensors`, and what decoding needs in `config.json`
    (`kner_tag_scheme`, `kner_head`, `kner_decoding`)."""
    from kner.models.artifacts import load_tagger

    model, tokenizer, _ = load_tagger(model_dir)
    if model.head.name not in ("softmax", "crf"):
        raise ValueError(f"{model_dir}: a {model.head.name} head has no BertForTokenClassification counterpart")
    crf = None
    if model.head.name == "crf":
        crf = {
            f"crf.{name}": getattr(model.crf, name).numpy()
            for name in ("transitions", "start_transitions", "end_transitions")
        }
    return save_token_classifier(
        model.backbone,
        directory,
        tokenizer.vocabulary,
        model.labels.tags,
        (model.classifier.kernel.numpy(), model.classifier.bias.numpy()),
        crf,
        {"kner_tag_scheme": model.labels.scheme, "kner_head": model.head.name, "kner_decoding": model.head.decoding},
    )


def huggingface_model(directory: Path):
    """`BertForTokenClassification` from `directory`, eval mode, eager attention."""
    import transformers

    transformers.logging.set_verbosity_error()  # the pooler it does not use is "unexpected"
    model = transformers.BertForTokenClassification.from_pretrained(str(directory), attn_implementation="eager")
    return model.eval()


def torch_logits(model, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        ids, mask = torch.from_numpy(input_ids), torch.from_numpy(attention_mask)
        return model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).logits.numpy()


def export_onnx(hf_dir: Path, path: Path) -> Path:
    """The model of `hf_dir` as ONNX (TorchScript exporter, opset 17), inputs
    `INPUTS` int64 [batch, sequence], output `logits` [batch, sequence, tags]."""
    import torch

    model = huggingface_model(hf_dir)
    example = torch.ones(2, 8, dtype=torch.int64)
    axes = {0: "batch", 1: "sequence"}
    torch.onnx.export(
        model,
        (example, torch.ones_like(example), torch.zeros_like(example)),
        str(path),
        input_names=list(INPUTS),
        output_names=["logits"],
        dynamic_axes={name: axes for name in (*INPUTS, "logits")},
        opset_version=OPSET,
        dynamo=False,
    )
    return path


def expected_fusions(layers: int) -> dict[str, int]:
    """Fused ops a BERT encoder of `layers` layers must come out with."""
    return {"EmbedLayerNormalization": 1, "Attention": layers, "SkipLayerNormalization": 2 * layers, "FastGelu": layers}


def optimize(onnx_path: Path, path: Path, hf_dir: Path) -> dict[str, int]:
    """ONNX Runtime's transformer optimizer on `onnx_path`, written to `path`;
    returns the fused ops' counts (only the nonzero ones). `FusionError`
    unless they are `expected_fusions` and every `FastGelu` has its bias
    fused in."""
    from onnxruntime.transformers import optimizer

    config = json.loads((hf_dir / "config.json").read_text())
    model = optimizer.optimize_model(
        str(onnx_path),
        model_type="bert",
        num_heads=config["num_attention_heads"],
        hidden_size=config["hidden_size"],
    )
    counts = {op: n for op, n in model.get_fused_operator_statistics().items() if n}
    expected = expected_fusions(config["num_hidden_layers"])
    unbiased = [node.name for node in model.get_nodes_by_op_type("FastGelu") if len(node.input) < 2]
    if counts != expected or unbiased:
        raise FusionError(
            f"ONNX Runtime's optimizer fused {counts}, expected {expected}"
            + (f"; FastGelu without a bias: {unbiased}" if unbiased else "")
        )
    model.save_model_to_file(str(path))
    return counts


def quantize(fp32_path: Path, path: Path) -> Path:
    """Dynamic int8 quantization: weights QInt8, activations quantized per call."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The fused ops (com.microsoft domain) have no ONNX shape inference: their outputs are float32.
    options = {"DefaultTensorType": onnx.TensorProto.FLOAT}
    quantize_dynamic(str(fp32_path), str(path), weight_type=QuantType.QInt8, extra_options=options)
    return path


def session(path: Path, threads: int, spinning: bool):
    """An ONNX Runtime CPU session: `threads` intra-op threads, one inter-op
    thread (sequential execution), the pool spinning while it waits or not."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "1" if spinning else "0")
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OrtTagger:
    """Texts in, entities out: kner's tokenizer, an ONNX Runtime session over
    `onnx_path`, `numpy_tagger.Decoder` (module doc).

    Args:
        onnx_path: the optimized (and maybe quantized) model.
        hf_dir: its `write_huggingface` directory (tags, scheme, CRF scores).
        tokenizer: the model's `kner.data.tokenizer.CharTokenizer`.
        max_seq_length: tokens per row at most (texts must fit one window).
        threads, spinning: see `session`.
    """

    def __init__(self, onnx_path: Path, hf_dir: Path, tokenizer, max_seq_length: int, threads: int, spinning: bool):
        self.session = session(onnx_path, threads, spinning)
        self.decoder = Decoder.from_huggingface_dir(hf_dir)
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": np.zeros_like(input_ids)}
        return self.session.run(["logits"], feeds)[0]

    def __call__(self, texts: list[str]) -> list[list[Entity]]:
        batch = encode_batch(self.tokenizer, texts, self.max_seq_length)
        return self.decoder.entities(texts, self.logits(batch.input_ids, batch.attention_mask), batch.lengths)
