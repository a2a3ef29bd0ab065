"""Viterbi decoding one position at a time in NumPy: the reference that
kner.models.crf.viterbi (unrolled forward blocks, pointer-doubling
backtrace) must equal exactly."""

import numpy as np


def stepwise_viterbi(potentials, lengths, trans, start, end) -> tuple[np.ndarray, np.ndarray]:
    """Best tags [B, L] (0 after each row's length) and scores [B] of
    potentials [B, L, T], in float32 with the same additions in the same
    order as `viterbi` (ties: the lowest tag, as argmax)."""
    potentials = np.asarray(potentials, np.float32)
    tags = np.zeros(potentials.shape[:2], np.int32)
    scores = np.zeros(len(lengths), np.float32)
    for row, n in enumerate(lengths):
        if n == 0:
            continue
        delta = start + potentials[row, 0]
        pointers = []
        for t in range(1, n):
            candidates = delta[:, None] + trans
            pointers.append(np.argmax(candidates, axis=0))
            delta = np.max(candidates, axis=0) + potentials[row, t]
        final = delta + end
        tags[row, n - 1] = np.argmax(final)
        scores[row] = np.max(final)
        for t in range(n - 1, 0, -1):
            tags[row, t - 1] = pointers[t - 1][tags[row, t]]
    return tags, scores
