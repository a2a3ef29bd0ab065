"""Chinese word segmentation for whole word masking.

HFL's `chinese-bert-wwm` (Cui et al., 2019, github.com/ymcui/Chinese-BERT-wwm)
segments the text into words (with LTP) and masks all characters of a chosen
word together. kner uses jieba (the most used Chinese segmenter on PyPI, pure
Python, no model download), run once when the pretraining data is prepared;
its output is cached with the examples (`kner.data.pretraining_data`), so
the masking in the input pipeline needs no segmenter.

Example:
>>> word_lengths("使用语言模型")
[2, 2, 2]
"""

from __future__ import annotations

import functools
import logging


@functools.lru_cache(maxsize=1)
def _jieba():
    import jieba  # imported on first use: only data preparation needs it

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def word_lengths(text: str) -> list[int]:
    """Lengths in characters of the words of `text` (jieba's default
    accurate mode, with HMM for unknown words); they add up to `len(text)`."""
    return [len(word) for word in _jieba().cut(text, HMM=True) if word]


def char_lengths(text: str) -> list[int]:
    """Every character its own word (character masking, Google's original
    recipe for Chinese)."""
    return [1] * len(text)
