"""Checkpoints: the public face of `kner.backbones`, and its command line.

    python -m kner.checkpoint inspect PATH

prints the family, config and variables of a checkpoint (BERT, ALBERT,
ELECTRA, Hugging Face or keras-hub preset), and says whether kner can load it.

Example:

```python
from kner.checkpoint import load_backbone, save_google_checkpoint

backbone = load_backbone("chinese_L-12_H-768_A-12", max_seq_length=128)
save_google_checkpoint(backbone, "exported", vocab_file="vocab.txt")
```
"""

from __future__ import annotations

from absl import app

from kner.backbones.bert import bert_config_from_backbone, read_bert_config
from kner.backbones.loader import (
    CheckpointFiles,
    backbone_config,
    backbone_from_config,
    inspect,
    load_backbone,
    locate_checkpoint,
    save_google_checkpoint,
)
from kner.backbones.tf1_checkpoint import read_variables
from kner.errors import run_cli

__all__ = [
    "CheckpointFiles",
    "backbone_config",
    "backbone_from_config",
    "bert_config_from_backbone",
    "inspect",
    "load_backbone",
    "locate_checkpoint",
    "read_bert_config",
    "read_variables",
    "save_google_checkpoint",
]


def main(argv: list[str]) -> None:
    if len(argv) != 3 or argv[1] != "inspect":
        raise app.UsageError("expected the command: inspect PATH")
    inspect(argv[2])


if __name__ == "__main__":
    run_cli(main, takes_arguments=True)
