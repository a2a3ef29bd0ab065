"""The heads a `Tagger` can have, one module each, and the one registry of
them: `HEADS` feeds the `--head` flag, the model loader and the settings of
a model_dir.

Example:
>>> head = build_head("crf", labels)
>>> list(HEADS)
['crf', 'softmax', 'global_pointer', 'efficient_global_pointer', 'span']
"""

from __future__ import annotations

from kner.data.labels import LabelVocab
from kner.models.heads.base import Decoded, Head, Spans, Wrapper
from kner.models.heads.crf import CRFHead
from kner.models.heads.efficient_global_pointer import EfficientGlobalPointerHead
from kner.models.heads.global_pointer import GlobalPointerHead
from kner.models.heads.softmax import SoftmaxHead
from kner.models.heads.span import SpanHead

HEADS: dict[str, type[Head]] = {
    head.name: head for head in (CRFHead, SoftmaxHead, GlobalPointerHead, EfficientGlobalPointerHead, SpanHead)
}

__all__ = ["HEADS", "Decoded", "Head", "Spans", "Wrapper", "build_head", "decodings", "head_class"]


def head_class(name: str) -> type[Head]:
    """The head registered as `name`; ValueError naming the choices."""
    if name not in HEADS:
        raise ValueError(f"head must be one of {', '.join(HEADS)}, got {name!r}")
    return HEADS[name]


def build_head(name: str, labels: LabelVocab, decoding: str | None = None, **options) -> Head:
    """A new head `name` over `labels`; `options` it does not take
    (`Head.options`) are ignored."""
    cls = head_class(name)
    return cls(labels, decoding, **{key: value for key, value in options.items() if key in cls.options})


def decodings() -> list[str]:
    """Every head's `--decode` values, each once, in registry order."""
    return list(dict.fromkeys(value for head in HEADS.values() for value in head.decodings))
