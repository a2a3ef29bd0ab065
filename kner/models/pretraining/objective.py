"""The pretraining objective: the one interface that `kner.pretrain`, the
`Pretrainer` (`kner.training.pretrainer`) and the checkpoint writer call, so
that a new recipe is one module, not a branch in each of them.

A recipe is a `PretrainingModel` subclass (a Keras model holding the encoder
being pretrained, its heads and anything else the objective trains or reads,
such as ELECTRA's generator or a distillation teacher), and a `ModelType`
that names it for `--model_type`, with the checkpoint families it starts
from and the flag defaults of its recipe. The model says, on the features of
the input pipeline (`kner.data.masking`):

- `call`: its outputs;
- `loss_sums`: float32 sums over a batch, for the loss and for evaluation;
- `loss_counts`: what each loss term divides by, from the features alone
  (the `Pretrainer` all-reduces them over the global batch, so that every
  `tf.distribute` strategy takes the same step);
- `loss_terms`: the loss, `sum(weight * sums[sum] / global counts[count])`;
- `describe`: what it trains beside masked LM, for the log;
- `report`: held-out metrics from `loss_sums` added up over a dataset, and
  `best_metric`, the one that picks `model_dir/best`;
- `heads`: its heads' weights by checkpoint name (continued pretraining
  loads those a checkpoint has), and `describe_head`, their names in the log;
- `save_checkpoint`: the pretrained model in its original layout.

Recipes: `kner.models.pretraining.masked_lm` (BERT and ALBERT: masked LM with
next-sentence or sentence-order prediction),
`kner.models.pretraining.replaced_token_detection` (ELECTRA: generator and
discriminator),
`kner.models.pretraining.general_distillation` (a student BERT taught by a
frozen teacher's masked LM, DistilBERT's recipe).

Example:

```python
model_type = MODEL_TYPES["albert"]
model = model_type.create(backbone, PretrainOptions(sentence_task="sop"))
sums = model.loss_sums(features, model(features, training=True))
counts = model.loss_counts(features)
loss = sum(t.weight * sums[t.sum] / counts[t.count] for t in model.loss_terms)
```
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import keras
import keras_hub
import tensorflow as tf

from kner.backbones.weight_table import Weight

if TYPE_CHECKING:
    from kner.models.pretraining.general_distillation import DistillationOptions


class LossTerm(NamedTuple):
    """One term of a pretraining loss: `weight * sums[sum] / counts[count]`,
    the count all-reduced over the global batch."""

    sum: str
    count: str
    weight: float = 1.0


@dataclasses.dataclass(frozen=True)
class PretrainOptions:
    """What `kner.pretrain` tells a recipe beyond its encoder (resolved flags)."""

    sentence_task: str | None = None  # "nsp", "sop" or None (`kner.data.pretraining_data`)
    generator_hidden_size: float = 0.25  # ELECTRA: the generator's width, a fraction of the discriminator's
    temperature: float = 1.0  # ELECTRA: of the generator's softmax when sampling replacements
    disc_weight: float = 50.0  # ELECTRA: the discriminator loss's weight
    distillation: DistillationOptions | None = None  # general distillation: the teacher and the loss


class PretrainingModel(keras.Model):
    """The interface (module doc). `backbone` is the encoder being
    pretrained, the one `kner.train --init_checkpoint` fine-tunes later."""

    backbone: keras_hub.models.Backbone
    loss_terms: tuple[LossTerm, ...] = ()
    best_metric: str = "masked_lm_accuracy"

    def loss_sums(self, features: dict[str, tf.Tensor], outputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """float32 scalar sums over the batch: at least every `loss_terms`
        sum, and what `report` reads."""
        raise NotImplementedError

    def loss_counts(self, features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """float32 scalar counts of the batch, one per `loss_terms` count."""
        raise NotImplementedError

    def report(self, totals: Mapping[str, float]) -> dict[str, float | int]:
        """Held-out metrics from `loss_sums` added up over a dataset."""
        raise NotImplementedError

    def heads(self) -> dict[str, list[Weight]]:
        """Head name -> its weights under their checkpoint names."""
        raise NotImplementedError

    def describe(self) -> str:
        """What it trains beside masked LM, for the log line
        `masked LM (whole words){describe()}, adamw` (`" + SOP"`; "" for nothing)."""
        return ""

    def describe_head(self, head: str) -> str:
        """A head of `heads` as the log names it (`"masked LM (cls/predictions)"`)."""
        return head

    def save_checkpoint(self, directory: str | Path, vocab_file: str | Path) -> tuple[Path, str]:
        """Writes the model in its original checkpoint layout into
        `directory`, replacing what was there only once every file is
        complete; returns the checkpoint prefix and what it holds, for the
        log (`"bert/* and cls/predictions"`)."""
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class ModelType:
    """A `--model_type`: its recipe and what `kner.pretrain` needs to know.

    `families`: the checkpoint families (`kner.backbones.loader.FAMILIES`
    keys, or "huggingface") its encoder may start from, by
    `--init_checkpoint` or a config file; `defaults`: the values of flags
    left unset where this recipe differs from another (`sop`, `ngram_mask`,
    `optimizer`, and the flags only it reads: ELECTRA's `disc_weight`, ...);
    `sentence_tasks`: the sentence-pair tasks it can add; `masking`:
    `kner.data.masking.Masker` fields where its masking differs from BERT's
    (ELECTRA: `mask_probability`, `random_probability`)."""

    name: str
    description: str
    families: tuple[str, ...]
    create: Callable[[keras_hub.models.Backbone, PretrainOptions], PretrainingModel]
    defaults: Mapping[str, object]
    sentence_tasks: tuple[str, ...] = ()
    masking: Mapping[str, float] = dataclasses.field(default_factory=dict)
