"""Adversarial training on the word embeddings, one module per method behind
`Adversary` (`base`), which the training step calls after its clean pass:
FGM (`fgm`) and PGD (`pgd`). `ADVERSARIES` is the registry behind
`--adversarial`.

Example:
>>> adversary = build_adversary("pgd", model, epsilon=1.0, steps=3, alpha=0.3)
>>> Trainer(model, optimizer, strategy, model_dir, config, adversary=adversary)
"""

from __future__ import annotations

import keras

from kner.training.adversarial.base import Adversary, GradientsAt, add_gradients, word_embeddings
from kner.training.adversarial.fgm import FGM
from kner.training.adversarial.pgd import PGD

ADVERSARIES: dict[str, type[Adversary]] = {method.name: method for method in (FGM, PGD)}
# The `--adversarial` values: none (clean training) and the registry's.
METHODS = ("none", *ADVERSARIES)

__all__ = [
    "ADVERSARIES",
    "FGM",
    "METHODS",
    "PGD",
    "Adversary",
    "GradientsAt",
    "add_gradients",
    "build_adversary",
    "word_embeddings",
]


def build_adversary(method: str, model: keras.Model, **options) -> Adversary | None:
    """The adversary `method` on `model`'s word embeddings
    (`word_embeddings`), None for "none"; `options` it does not take
    (`Adversary.options`) are ignored. ValueError naming the choices for an
    unknown method, or a bad option."""
    if method == "none":
        return None
    if method not in ADVERSARIES:
        raise ValueError(f"adversarial must be one of {', '.join(METHODS)}, got {method!r}")
    cls = ADVERSARIES[method]
    return cls(word_embeddings(model), **{key: value for key, value in options.items() if key in cls.options})
