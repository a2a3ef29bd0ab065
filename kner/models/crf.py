"""Linear-chain conditional random field as a Keras 3 layer in core TF ops.

The layer holds the transition scores and implements the masked forward
algorithm (`log_likelihood`) and Viterbi decoding (`decode`). Everything runs
in float32 whatever the dtype of the incoming potentials, and lowers to core
TF ops only (`tf.while_loop`, `tf.foldl`, `tf.gather`, `tf.reduce_logsumexp`), so
it works eagerly, in `tf.function`, under XLA and in a SavedModel served by
stock TF Serving.

Masks must be left-aligned prefixes: `mask[b]` is True for the first
`length[b]` positions and False afterwards (the pipeline drops [CLS]/[SEP]
before the CRF). A row that is all padding has likelihood 0 and decodes to
all zeros.

Example:

```python
tags = ["O", "B-name", "I-name"]
trans, start, end = allowed_transitions(tags, "bio")
crf = CRF(len(tags), allowed_transitions=trans, allowed_start=start,
          allowed_end=end)
potentials = keras.random.normal((2, 5, 3))
mask = [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
loss = -crf.log_likelihood(potentials, [[0, 1, 2, 0, 0], [1, 2, 0, 0, 1]], mask)
best_tags, scores = crf.decode(potentials, mask)
```
"""

import keras
import numpy as np
import tensorflow as tf

from kner.data.tags import SCHEMES, split_tag, transition_problem

# Score added to transitions the tag scheme forbids when decoding. Finite (not
# -inf) so that sums stay NaN-free under XLA and in float32.
DISALLOWED_SCORE = -1e4


def allowed_transitions(tag_names: list[str], scheme: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Transitions allowed by a tagging scheme, for `CRF(allowed_*=...)`.

    Derived from the scheme's grammar, `kner.data.tags.transition_problem`,
    which the strict reader uses too: a path of allowed transitions that
    starts and ends on allowed tags is exactly a sequence that
    `tags_to_spans(..., strict=True)` accepts.

    Args:
        tag_names: tag of each index, like `"O"`, `"B-name"`, `"I-name"`;
            the entity type is everything after the first "-".
        scheme: one of `"bio"`, `"bios"`, `"bioes"`, `"bmes"`.

    Returns:
        `(transitions, start, end)` boolean arrays of shapes (T, T) indexed
        [from, to], (T,) and (T,).

    Example:

    >>> trans, start, end = allowed_transitions(["O", "B-x", "I-x"], "bio")
    >>> bool(trans[0, 2]), bool(start[2]), bool(end[1])
    (False, False, True)
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown tag scheme {scheme!r}; expected one of {SCHEMES}")
    for name in tag_names:
        split_tag(name, scheme)  # ValueError for a tag the scheme does not have

    def allowed(previous: str | None, tag: str | None) -> bool:
        return transition_problem(previous, tag, scheme) is None

    transitions = np.array([[allowed(p, c) for c in tag_names] for p in tag_names], bool)
    transitions = transitions.reshape(len(tag_names), len(tag_names))
    start = np.array([allowed(None, c) for c in tag_names], bool)
    end = np.array([allowed(p, None) for p in tag_names], bool)
    return transitions, start, end


def _as_allowed(value, shape: tuple[int, ...], name: str) -> np.ndarray | None:
    if value is None:
        return None
    array = np.asarray(value, dtype=bool)
    if array.shape != shape:
        raise ValueError(f"{name} has shape {array.shape}, expected {shape}")
    return array


def _penalty(allowed: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    if allowed is None:
        return np.zeros(shape, np.float32)
    return np.where(allowed, 0.0, DISALLOWED_SCORE).astype(np.float32)


def constraint_scores(tag_names: list[str], scheme: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The scheme's constraints as scores to add: 0 where `allowed_transitions`
    allows, `DISALLOWED_SCORE` elsewhere; float32 arrays (T, T), (T,), (T,).
    Viterbi over these alone (zero learned transitions) is the softmax
    head's constrained decoding."""
    transitions, start, end = allowed_transitions(tag_names, scheme)
    return (_penalty(transitions, transitions.shape), _penalty(start, start.shape), _penalty(end, end.shape))


# Viterbi steps per iteration of its forward loop (`viterbi`), even: each
# loop iteration costs control ops whose executor overhead outweighs a
# step's arithmetic on short texts (bench/README.md, "Where batch-1 time goes").
FORWARD_UNROLL = 16
# Pointer-doubling rounds per iteration of the backtrace loop (`_follow`):
# texts of up to 2**6 = 64 positions take one iteration (a loop iteration's
# control ops cost more than a round's two gathers).
DOUBLING_UNROLL = 6
# Positions per iteration of the step-by-step backtrace (`_backtrack`).
BACKTRACK_UNROLL = 16
# Texts per batch from which `viterbi` backtracks step by step: the pointer
# table and its doubling cost B * L * T * T work, the steps B * L * T plus a
# fixed cost per position, which only a single text does not repay
# (bench/README.md, "Serving: fused encoder layers, chunks by size, a
# step-by-step backtrace": 32 texts x 50 positions x 41 tags 8.3 -> 3.7 ms).
BACKTRACK_FROM = 2
# Bytes the largest tensor of an O(L * T**2)-memory decoding step may take
# (`fits_quadratic_budget`).
QUADRATIC_BUDGET_BYTES = 16 * 2**20


def fits_quadratic_budget(batch_size, steps, num_tags, itemsize: int = 4):
    """Whether a [B, L, T, T] tensor of `itemsize`-byte elements fits
    `QUADRATIC_BUDGET_BYTES` (16 MiB): the rule for any decoding algorithm
    that is faster than the O(B * L * T)-memory recursion but holds
    O(B * L * T**2) memory (pointer doubling, a log-depth scan). Beyond it,
    decode step by step, so that memory grows as L * T for any batch: one
    16,000-character text with 265 tags would otherwise hold a 4.5 GB pointer
    table (kmkurn/pytorch-crf#35 is the same trap).

    Args:
        batch_size, steps, num_tags: B, L and T, Python ints (the answer is
            a bool) or int scalar tensors (a bool tensor, for shapes known
            only when a graph runs).
        itemsize: bytes per element (4 for float32 and int32).

    Example:

    >>> fits_quadratic_budget(1, 512, 41), fits_quadratic_budget(1, 4_000, 265)
    (True, False)
    """
    dims = (batch_size, steps, num_tags)
    if all(isinstance(d, int) for d in dims):
        return batch_size * steps * num_tags * num_tags * itemsize <= QUADRATIC_BUDGET_BYTES
    batch, length, tags = (tf.cast(d, tf.int64) for d in dims)  # 4 * 16,000 * 265**2 overflows int32
    return batch * length * tags * tags * itemsize <= QUADRATIC_BUDGET_BYTES


def viterbi(potentials, mask, lengths, transitions, start, end) -> tuple[tf.Tensor, tf.Tensor]:
    """Masked Viterbi decoding in core TF ops (the CRF's and the softmax head's).

    The forward loop only runs the max-plus recursion, `FORWARD_UNROLL`
    positions per iteration with no masking (a row's scores past its length
    are computed and never read), and keeps every position's scores
    ([L, B, T]). The backtrace then depends on the batch and the size: for a
    single text (fewer than `BACKTRACK_FROM`) whose [L, 1, T, T] candidate
    scores fit `QUADRATIC_BUDGET_BYTES` (`fits_quadratic_budget`), the
    back-pointers are one argmax over all positions, followed all at once by
    pointer doubling (`_follow`), ceil(log2 L) gathers instead of L
    sequential steps (fewer ops: an op's fixed cost is most of a short
    text's time); otherwise (batches, and long texts with many tags) the
    path is traced back step by step from the best scores kept
    (`_backtrack`), which never builds the [L, B, T, T] table: memory grows
    as L * T. The choice is made when the graph is built if the shapes are
    static (eagerly, under XLA), else by a `tf.cond` that runs one branch.
    Every score is the same float32 sum, in the same order, as the
    step-by-step recursion's (tests/viterbi_reference.py), so tags and
    scores are exactly its own, ties included, either way. (The forward
    stays sequential: a log-depth max-plus scan over positions composes
    [T, T] matrices, O(L T**3) work, and lost by 19x at 37 positions and 41
    tags; BUILD.md, "A batch-1 call's fixed cost".)

    Args:
        potentials: [B, L, T] float32 unary scores, L >= 1.
        mask: [B, L] bool prefix mask; lengths: [B] int32, its row sums.
        transitions: [T, T] float32 scores, [from, to]; start, end: [T]
            float32 scores of the first and last tag.

    Returns:
        `(tags, scores)`: best tags [B, L] int32 (0 at padded positions) and
        the best path's score [B] float32 (0 for all-padding rows).
    """
    batch_size, steps, num_tags = tf.unstack(tf.shape(potentials))
    # Positions 1.. in blocks of FORWARD_UNROLL, at least one (no loop and no
    # TensorArray is ever empty: XLA rejects those), padded with zeros.
    blocks = tf.maximum((steps - 1 + FORWARD_UNROLL - 1) // FORWARD_UNROLL, 1)
    padding = 1 + blocks * FORWARD_UNROLL - steps
    time_major = tf.pad(tf.transpose(potentials, [1, 0, 2])[1:], [[0, padding], [0, 0], [0, 0]])
    # Scores alternate between columns [B, T, 1] and rows [B, 1, T] from one
    # position to the next, so that each step is an add, a max and an add
    # (no reshape): a column plus `transitions` [from, to] maxed over `from`
    # is a row, a row plus `transitions` transposed maxed over `from` is a
    # column. Even positions of a block (in the loop's numbering) add row
    # potentials, odd ones column potentials.
    half = FORWARD_UNROLL // 2
    # Each tensor the loop reads is a loop variable that costs control ops at
    # every iteration (bench/README.md, "Where a serving call's time goes"):
    # one tensor of potentials, [blocks, FORWARD_UNROLL, B, T] (each block
    # read both as rows and as columns); one of transition scores
    # [2, T, T]; shapes from constants (T is static in a served graph); the
    # loop's own iteration counter bounds it (`maximum_iterations`).
    by_block = tf.reshape(time_major, [blocks, FORWARD_UNROLL, batch_size, num_tags])
    both_ways = tf.stack([transitions, tf.transpose(transitions)])
    first = (start + potentials[:, 0])[:, :, None]  # a column
    first_row_shape = tf.TensorShape([first.shape[0], 1, first.shape[1]])
    tags_dim = potentials.shape[-1] or num_tags

    def forward(block, column, history):
        block_potentials = by_block[block]
        as_rows = tf.unstack(tf.reshape(block_potentials, [FORWARD_UNROLL, -1, 1, tags_dim]), FORWARD_UNROLL)
        as_columns = tf.unstack(tf.reshape(block_potentials, [FORWARD_UNROLL, -1, tags_dim, 1]), FORWARD_UNROLL)
        to_row, to_column = tf.unstack(both_ways, 2)
        rows, columns = [], []
        for row_potential, column_potential in zip(as_rows[::2], as_columns[1::2]):
            row = tf.reduce_max(column + to_row, axis=1, keepdims=True) + row_potential
            column = tf.reduce_max(row + to_column, axis=2, keepdims=True) + column_potential
            row.set_shape(first_row_shape)  # static shapes only: no op
            column.set_shape(first.shape)
            rows.append(row)
            columns.append(column)
        # [half, 2, B, T]: the block's scores in position order.
        flat = [tf.reshape(tf.stack(scores), [half, -1, tags_dim]) for scores in (rows, columns)]
        return block + 1, column, history.write(block, tf.stack(flat, axis=1))

    history = tf.TensorArray(tf.float32, size=blocks, element_shape=tf.TensorShape([half, 2, None, None]))
    _, _, history = tf.while_loop(lambda *_: True, forward, (tf.constant(0), first, history), maximum_iterations=blocks)
    # Every position's best scores per tag [L, B, T], in position order.
    later = tf.reshape(history.stack(), [-1, batch_size, num_tags])
    deltas = tf.concat([first[None, :, :, 0], later[: steps - 1]], axis=0)
    last = tf.maximum(lengths - 1, 0)
    final = tf.gather_nd(deltas, tf.stack([last, tf.range(batch_size)], axis=1)) + end
    last_tags = tf.argmax(final, axis=1, output_type=tf.int32)

    def by_doubling() -> tf.Tensor:
        # pointers[t][b, tag at t + 1] = the best tag at t, as the loop chose
        # (the same sums: delta[from] + transitions[from, to]).
        pointers = tf.argmax(deltas[:-1, :, :, None] + transitions, axis=2, output_type=tf.int32)
        # The pointers of a row's last position map anything to its best final tag.
        is_last = tf.range(steps)[:, None, None] == last[None, :, None]
        pointers = tf.where(is_last, last_tags[None, :, None], tf.pad(pointers, [[0, 1], [0, 0], [0, 0]]))
        return _follow(pointers)

    def step_by_step() -> tf.Tensor:
        return _backtrack(deltas, last, last_tags, transitions)

    static = tf.TensorShape(potentials.shape).as_list()
    if None not in static:
        doubling = static[0] < BACKTRACK_FROM and fits_quadratic_budget(*static)
        tags = by_doubling() if doubling else step_by_step()
    else:
        doubling = tf.logical_and(batch_size < BACKTRACK_FROM, fits_quadratic_budget(batch_size, steps, num_tags))
        tags = tf.cond(doubling, by_doubling, step_by_step)
    scores = tf.where(lengths > 0, tf.reduce_max(final, axis=1), 0.0)
    return tf.where(mask, tf.transpose(tags), 0), scores


def _backtrack(deltas: tf.Tensor, last: tf.Tensor, last_tags: tf.Tensor, transitions: tf.Tensor) -> tf.Tensor:
    """The Viterbi backtrace step by step: tags [L, B] int32 from the best
    scores per position and tag `deltas` [L, B, T], each row's last position
    `last` [B] and best final tag `last_tags` [B]: `tags[t] = argmax over
    from of deltas[t][b, from] + transitions[from, tags[t + 1]]` before a
    row's last position, `last_tags` from it on. `BACKTRACK_UNROLL`
    positions per loop iteration, from the end."""
    steps = tf.shape(deltas)[0]
    blocks = (steps + BACKTRACK_UNROLL - 1) // BACKTRACK_UNROLL
    size = blocks * BACKTRACK_UNROLL
    batch_size, num_tags = tf.shape(deltas)[1], tf.shape(deltas)[2]
    # [blocks, BACKTRACK_UNROLL, ...]: a block is one index (XLA needs static slice sizes).
    padded = tf.pad(deltas, [[0, size - steps], [0, 0], [0, 0]])
    padded = tf.reshape(padded, [blocks, BACKTRACK_UNROLL, batch_size, num_tags])
    ended = tf.range(size)[:, None] >= last[None, :]  # at or past the row's last position
    ended = tf.reshape(ended, [blocks, BACKTRACK_UNROLL, batch_size])
    to_from = tf.transpose(transitions)

    def back(block, tag, history):
        block_deltas = tf.unstack(padded[blocks - 1 - block], BACKTRACK_UNROLL)
        block_ended = tf.unstack(ended[blocks - 1 - block], BACKTRACK_UNROLL)
        block_tags = []
        for delta, at_end in zip(reversed(block_deltas), reversed(block_ended)):
            best = tf.argmax(delta + tf.gather(to_from, tag), axis=1, output_type=tf.int32)
            tag = tf.where(at_end, last_tags, best)
            block_tags.append(tag)
        return block + 1, tag, history.write(block, tf.stack(block_tags[::-1]))

    history = tf.TensorArray(tf.int32, size=blocks, element_shape=tf.TensorShape([BACKTRACK_UNROLL, None]))
    _, _, history = tf.while_loop(lambda block, *_: block < blocks, back, [tf.constant(0), last_tags, history])
    # Blocks were written from the last one back.
    return tf.reshape(tf.reverse(history.stack(), [0]), [size, -1])[:steps]


def _follow(pointers: tf.Tensor) -> tf.Tensor:
    """The Viterbi backtrace: tags [L, B] with `tags[t] = pointers[t][b,
    tags[t + 1]]`, from pointers [L, B, T] whose rows at each row's last
    position are constant (rows after it are never read into the result
    before it).

    Pointer doubling: after round k, `composed[t]` maps the tag at `t + 2**k`
    to the tag at `t` (the whole rest of the path, a constant, where that
    passes the row's last position, so what it is composed with there does
    not matter: the last row stands in for anything past the end), by
    composing `composed[t]` with `composed[t + 2**k]` in one gather; after
    ceil(log2 L) rounds (`DOUBLING_UNROLL` per loop iteration; extra rounds
    change nothing) every `composed[t]` is constant.
    """
    steps = tf.shape(pointers)[0]
    positions = tf.range(steps)

    def compose(span, composed):
        for _ in range(DOUBLING_UNROLL):
            later = tf.gather(composed, tf.minimum(positions + span, steps - 1))
            composed = tf.gather(composed, later, batch_dims=2)
            span *= 2
        composed.set_shape(pointers.shape)  # static shape only: no op
        return span, composed

    _, composed = tf.while_loop(lambda span, _: span < steps, compose, [tf.constant(1), pointers])
    return composed[:, :, 0]


def _time_major(potentials, mask) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Scan inputs over all L positions: potentials, mask, is-first flag.

    Position 0 is handled inside the scan (rather than as the initial
    state) so that no scan is ever empty: XLA rejects zero-length scans.
    """
    steps = tf.shape(potentials)[1]
    return (
        tf.transpose(potentials, [1, 0, 2]),
        tf.transpose(mask),
        tf.range(steps) == 0,
    )


@keras.saving.register_keras_serializable(package="kner")
class CRF(keras.layers.Layer):
    """Linear-chain CRF over per-position tag potentials.

    Args:
        num_tags: number of tags T.
        use_boundary_transitions: learn `start_transitions` and
            `end_transitions` (scores for the first and last tag).
        allowed_transitions: optional (T, T) bool array, [from, to]; forbidden
            transitions are scored `DISALLOWED_SCORE` when decoding only.
        allowed_start: optional (T,) bool array of tags a sequence may start
            with (decoding only).
        allowed_end: optional (T,) bool array of tags a sequence may end with
            (decoding only).

    Calling the layer on potentials [B, L, T] (and an optional mask [B, L])
    returns the Viterbi tags [B, L] int32, with 0 at padded positions.

    Example:

    ```python
    crf = CRF(num_tags=5)
    tags = crf(keras.random.normal((2, 7, 5)))  # [2, 7] int32
    ```
    """

    def __init__(
        self,
        num_tags: int,
        use_boundary_transitions: bool = True,
        allowed_transitions=None,
        allowed_start=None,
        allowed_end=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_tags = int(num_tags)
        self.use_boundary_transitions = bool(use_boundary_transitions)
        shape2, shape1 = (self.num_tags, self.num_tags), (self.num_tags,)
        self.allowed_transitions = _as_allowed(allowed_transitions, shape2, "allowed_transitions")
        self.allowed_start = _as_allowed(allowed_start, shape1, "allowed_start")
        self.allowed_end = _as_allowed(allowed_end, shape1, "allowed_end")
        # Non-trainable constants: embedded into traced graphs as tf.constant.
        self._transition_penalty = _penalty(self.allowed_transitions, shape2)
        self._start_penalty = _penalty(self.allowed_start, shape1)
        self._end_penalty = _penalty(self.allowed_end, shape1)

        self.build()

    def build(self, input_shape=None):
        # Weights depend only on `num_tags`, so the layer builds itself at
        # init and `log_likelihood`/`decode` work before the first `call`.
        def weight(name, shape):
            return self.add_weight(
                name=name,
                shape=shape,
                initializer="zeros",
                dtype="float32",
                autocast=False,
            )

        tags = self.num_tags
        self.transitions = weight("transitions", (tags, tags))
        if self.use_boundary_transitions:
            self.start_transitions = weight("start_transitions", (tags,))
            self.end_transitions = weight("end_transitions", (tags,))

    def _boundary(self) -> tuple[tf.Tensor, tf.Tensor]:
        if self.use_boundary_transitions:
            return (
                tf.convert_to_tensor(self.start_transitions),
                tf.convert_to_tensor(self.end_transitions),
            )
        zeros = tf.zeros([self.num_tags], tf.float32)
        return zeros, zeros

    @staticmethod
    def _prepare(potentials, mask) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """float32 potentials, bool mask and int32 lengths."""
        potentials = tf.cast(potentials, tf.float32)
        if mask is None:
            mask = tf.ones(tf.shape(potentials)[:2], tf.bool)
        mask = tf.cast(mask, tf.bool)
        lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
        return potentials, mask, lengths

    def _log_partition(self, potentials, mask, lengths) -> tf.Tensor:
        start, end = self._boundary()
        transitions = tf.convert_to_tensor(self.transitions)

        def step(alpha, inputs):
            potential, step_mask, is_first = inputs
            scores = alpha[:, :, None] + transitions[None]
            new_alpha = tf.where(is_first, start, tf.reduce_logsumexp(scores, 1))
            return tf.where(step_mask[:, None], new_alpha + potential, alpha)

        alpha = tf.foldl(
            step,
            _time_major(potentials, mask),
            initializer=tf.zeros_like(potentials[:, 0]),
        )
        log_z = tf.reduce_logsumexp(alpha + end, axis=1)
        return tf.where(lengths > 0, log_z, 0.0)

    def log_likelihood(self, potentials, tags, mask=None) -> tf.Tensor:
        """Log p(tags | potentials) per sequence, [B] float32.

        Args:
            potentials: [B, L, T] unary scores (any float dtype), L >= 1.
            tags: [B, L] int gold tags; values at padded positions are ignored.
            mask: [B, L] bool/int prefix mask, True at real positions.
        """
        potentials, mask, lengths = self._prepare(potentials, mask)
        tags = tf.where(mask, tf.cast(tags, tf.int32), 0)
        start, end = self._boundary()
        transitions = tf.convert_to_tensor(self.transitions)

        unary = tf.gather(potentials, tags, batch_dims=2)
        pairs = tf.stack([tags[:, :-1], tags[:, 1:]], axis=-1)
        binary = tf.gather_nd(transitions, pairs)
        last_tags = tf.gather(tags, tf.maximum(lengths - 1, 0), batch_dims=1)
        nonempty = lengths > 0
        gold = (
            tf.reduce_sum(tf.where(mask, unary, 0.0), axis=1)
            + tf.reduce_sum(tf.where(mask[:, 1:], binary, 0.0), axis=1)
            + tf.where(nonempty, tf.gather(start, tags[:, 0]), 0.0)
            + tf.where(nonempty, tf.gather(end, last_tags), 0.0)
        )
        return gold - self._log_partition(potentials, mask, lengths)

    def _viterbi(self, potentials, mask, lengths) -> tuple[tf.Tensor, tf.Tensor]:
        start, end = self._boundary()
        return viterbi(
            potentials,
            mask,
            lengths,
            tf.convert_to_tensor(self.transitions) + self._transition_penalty,
            start + self._start_penalty,
            end + self._end_penalty,
        )

    def decode(self, potentials, mask=None) -> tuple[tf.Tensor, tf.Tensor]:
        """Viterbi decoding under the allowed-transition constraints.

        Returns:
            `(tags, scores)`: best tags [B, L] int32 (0 at padded positions)
            and the best path's unnormalised score [B] float32 (0 for
            all-padding rows).
        """
        return self._viterbi(*self._prepare(potentials, mask))

    def sequence_log_prob(self, potentials, mask=None) -> tuple[tf.Tensor, tf.Tensor]:
        """Viterbi tags [B, L] and their log-probability [B] under the model."""
        potentials, mask, lengths = self._prepare(potentials, mask)
        tags, scores = self._viterbi(potentials, mask, lengths)
        return tags, scores - self._log_partition(potentials, mask, lengths)

    def call(self, potentials, mask=None):
        return self.decode(potentials, mask)[0]

    def compute_output_spec(self, potentials, mask=None):
        return keras.KerasTensor(potentials.shape[:-1], dtype="int32")

    def get_config(self) -> dict:
        def as_list(array):
            return None if array is None else array.tolist()

        config = super().get_config()
        config.update(
            num_tags=self.num_tags,
            use_boundary_transitions=self.use_boundary_transitions,
            allowed_transitions=as_list(self.allowed_transitions),
            allowed_start=as_list(self.allowed_start),
            allowed_end=as_list(self.allowed_end),
        )
        return config
