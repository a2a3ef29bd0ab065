"""The reference side of the benchmarks: Hugging Face `BertForTokenClassification`
on PyTorch, set up as kner sets up its own model.

- the same shape (a `BertConfig` from kner's `bert_config.json`), random
  init, GELU in its tanh form (`gelu_pytorch_tanh`, what keras-hub computes);
- the same optimizer: AdamW (epsilon 1e-6), warmup then linear decay, global
  norm clipping, no weight decay on LayerNorm and biases, the head
  (classifier, CRF) at its own learning rate;
- the same loss: per-character cross-entropy averaged over characters, or a
  CRF's negative log-likelihood averaged over sentences, on the positions
  between [CLS] and [SEP];
- for the CRF head, `CRF` below: a plain linear-chain CRF (forward algorithm,
  Viterbi) with kner's tag-scheme constraints at decoding time.

Example:
>>> model = TorchTagger(bert_config, num_tags=41, head="softmax")
>>> optimizer, scheduler = make_optimizer(model, 1e-3, 5e-3, 0.01, 100, 1000)
>>> loss = train_step(model, optimizer, scheduler, to_torch(batch))
"""

from __future__ import annotations

import numpy as np
import torch
from common import char_mask
from transformers import BertConfig, BertForTokenClassification, get_linear_schedule_with_warmup

DISALLOWED_SCORE = -1e4  # kner.models.crf's penalty for transitions the scheme forbids


def hf_config(bert_config: dict, num_tags: int, classifier_dropout: float = 0.1) -> BertConfig:
    return BertConfig(
        vocab_size=bert_config["vocab_size"],
        hidden_size=bert_config["hidden_size"],
        num_hidden_layers=bert_config["num_hidden_layers"],
        num_attention_heads=bert_config["num_attention_heads"],
        intermediate_size=bert_config["intermediate_size"],
        hidden_act="gelu_pytorch_tanh",
        hidden_dropout_prob=bert_config["hidden_dropout_prob"],
        attention_probs_dropout_prob=bert_config["attention_probs_dropout_prob"],
        max_position_embeddings=bert_config["max_position_embeddings"],
        type_vocab_size=bert_config["type_vocab_size"],
        initializer_range=bert_config["initializer_range"],
        classifier_dropout=classifier_dropout,
        num_labels=num_tags,
    )


class CRF(torch.nn.Module):
    """Linear-chain CRF over [B, L, T] potentials with a left-aligned mask."""

    def __init__(self, allowed: np.ndarray, allowed_start: np.ndarray, allowed_end: np.ndarray):
        super().__init__()
        tags = len(allowed_start)
        self.transitions = torch.nn.Parameter(torch.zeros(tags, tags))
        self.start_transitions = torch.nn.Parameter(torch.zeros(tags))
        self.end_transitions = torch.nn.Parameter(torch.zeros(tags))
        for name, value in (("penalty", allowed), ("start_penalty", allowed_start), ("end_penalty", allowed_end)):
            self.register_buffer(name, torch.where(torch.as_tensor(value), 0.0, DISALLOWED_SCORE))

    def log_likelihood(self, scores: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """log p(tags | scores) per sentence, [B]; every row must be nonempty."""
        lengths = mask.sum(1)
        rows = torch.arange(len(tags))
        unary = scores.gather(2, tags[..., None]).squeeze(-1)
        binary = self.transitions[tags[:, :-1], tags[:, 1:]]
        gold = (
            (unary * mask).sum(1)
            + (binary * mask[:, 1:]).sum(1)
            + self.start_transitions[tags[:, 0]]
            + self.end_transitions[tags[rows, lengths - 1]]
        )
        alpha = self.start_transitions + scores[:, 0]
        for t in range(1, scores.shape[1]):
            step = torch.logsumexp(alpha[:, :, None] + self.transitions, 1) + scores[:, t]
            alpha = torch.where(mask[:, t, None], step, alpha)
        return gold - torch.logsumexp(alpha + self.end_transitions, 1)

    @torch.no_grad()
    def decode(self, scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Viterbi tags [B, L] under the scheme's constraints, 0 past the mask."""
        transitions = self.transitions + self.penalty
        delta = self.start_transitions + self.start_penalty + scores[:, 0]
        pointers = []
        for t in range(1, scores.shape[1]):
            best, pointer = (delta[:, :, None] + transitions).max(1)
            keep = mask[:, t, None]
            delta = torch.where(keep, best + scores[:, t], delta)
            pointers.append(torch.where(keep, pointer, torch.arange(scores.shape[2])))
        tag = (delta + self.end_transitions + self.end_penalty).argmax(1)
        path = [tag]
        for pointer in reversed(pointers):
            tag = pointer.gather(1, tag[:, None]).squeeze(1)
            path.append(tag)
        return torch.stack(path[::-1], 1) * mask


INITS = ("hf", "keras_hub")


def keras_hub_init(module: torch.nn.Module, stddev: float) -> None:
    """Re-draws every Linear and Embedding weight as keras-hub's BERT (and
    kner's classifier) draw theirs: a normal truncated at two standard
    deviations, which leaves 0.88x the standard deviation. HF draws a plain
    normal and zeroes the [PAD] embedding row."""
    for layer in module.modules():
        if isinstance(layer, torch.nn.Linear | torch.nn.Embedding):
            torch.nn.init.trunc_normal_(layer.weight, std=stddev, a=-2 * stddev, b=2 * stddev)


class TorchTagger(torch.nn.Module):
    """BertForTokenClassification, optionally followed by `CRF`; `init` is
    HF's own (`hf`) or keras-hub's (`keras_hub`)."""

    def __init__(
        self,
        bert_config: dict,
        num_tags: int,
        head: str = "softmax",
        constraints=None,
        dropout: float = 0.1,
        init: str = "hf",
    ):
        super().__init__()
        self.bert = BertForTokenClassification(hf_config(bert_config, num_tags, dropout))
        if init == "keras_hub":
            keras_hub_init(self.bert, bert_config["initializer_range"])
        elif init != "hf":
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        self.crf = CRF(*constraints) if head == "crf" else None

    def head_parameters(self) -> list[torch.nn.Parameter]:
        crf = list(self.crf.parameters()) if self.crf is not None else []
        return [*self.bert.classifier.parameters(), *crf]

    def logits(self, batch: dict) -> torch.Tensor:
        return self.bert(input_ids=batch["token_ids"], attention_mask=batch["padding_mask"]).logits

    def loss(self, batch: dict) -> torch.Tensor:
        chars = batch["char_mask"]
        if self.crf is None:  # the usual Hugging Face way: -100 marks what the loss skips
            labels = torch.where(chars, batch["label_ids"], -100)
            return self.bert(input_ids=batch["token_ids"], attention_mask=batch["padding_mask"], labels=labels).loss
        scores = self.logits(batch)[:, 1:]
        return -self.crf.log_likelihood(scores, batch["label_ids"][:, 1:], chars[:, 1:]).mean()

    @torch.no_grad()
    def decode(self, batch: dict) -> torch.Tensor:
        """Tag ids [B, L] at token positions, 0 elsewhere (as `kner.models.tagger.Tagger.decode`)."""
        scores = self.logits(batch)
        chars = batch["char_mask"]
        if self.crf is None:
            return scores.argmax(-1) * chars
        tags = self.crf.decode(scores[:, 1:], chars[:, 1:])
        return torch.nn.functional.pad(tags, (1, 0))


def make_optimizer(
    model: TorchTagger,
    learning_rate: float,
    head_learning_rate: float,
    weight_decay: float,
    warmup_steps: int,
    total_steps: int,
):
    """AdamW + warmup/linear decay with kner's parameter groups."""
    head = {id(p) for p in model.head_parameters()}
    groups = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        rate = head_learning_rate if id(parameter) in head else learning_rate
        decay = 0.0 if name.endswith("bias") or "LayerNorm" in name else weight_decay
        groups.setdefault((rate, decay), []).append(parameter)
    optimizer = torch.optim.AdamW(
        [{"params": ps, "lr": rate, "weight_decay": decay} for (rate, decay), ps in groups.items()], eps=1e-6
    )
    return optimizer, get_linear_schedule_with_warmup(optimizer, warmup_steps, total_steps)


def train_step(
    model: TorchTagger, optimizer, scheduler, batch: dict, clip_norm: float = 1.0, bfloat16: bool = False
) -> float:
    """Forward, backward, clip, AdamW update; returns the loss. `bfloat16`:
    the forward pass under `torch.autocast("cpu", torch.bfloat16)`, PyTorch's
    mixed precision on CPU (weights, gradients and AdamW state stay float32)."""
    model.train()
    with torch.autocast("cpu", torch.bfloat16, enabled=bfloat16):
        loss = model.loss(batch)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


def to_torch(batch: dict) -> dict:
    """A numpy batch of `common` as torch tensors, with its `char_mask`: the
    positions the loss reads (the batch's `label_mask` if it has one, as
    `common.wnut17_batches`, else every character)."""
    units = batch["label_mask"] if "label_mask" in batch else char_mask(batch["padding_mask"])
    tensors = {
        "token_ids": torch.as_tensor(batch["token_ids"], dtype=torch.long),
        "padding_mask": torch.as_tensor(batch["padding_mask"], dtype=torch.long),
        "char_mask": torch.as_tensor(units),
    }
    if "label_ids" in batch:
        tensors["label_ids"] = torch.as_tensor(batch["label_ids"], dtype=torch.long)
    return tensors
