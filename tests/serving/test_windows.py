import numpy as np
import pytest
import tensorflow as tf

from kner.models.heads import Spans
from kner.serving.windows import (
    check_window,
    default_stride,
    keep_window_spans,
    merge_windows,
    plan_windows,
    window_tokens,
)

BIG = 10**9


def reference_starts(n: int, window: int, stride: int) -> list[int]:
    """Window starts, written out plainly: every `stride`, the last one moved
    back to end at the text's end."""
    starts = [0]
    while starts[-1] + window < n:
        starts.append(min(starts[-1] + stride, n - window))
    return starts


def reference_owner(i: int, n: int, starts: list[int], window: int) -> int:
    """The window where character i sits farthest from a window edge that is
    not a text edge; the earliest on ties."""

    def context(start: int) -> int:
        end = min(start + window, n)
        left = i - start if start > 0 else BIG
        right = end - 1 - i if end < n else BIG
        return min(left, right)

    holding = [k for k, s in enumerate(starts) if s <= i < min(s + window, n)]
    return max(holding, key=lambda k: (context(starts[k]), -k))


@pytest.mark.parametrize("one_window_each", [False, True], ids=["longer texts", "one window each"])
@pytest.mark.parametrize("window", [1, 2, 3, 5, 8])
def test_plan_matches_reference_for_every_stride(window, one_window_each):
    """Texts of every length up to three windows, and a request whose texts
    all fit one window (the plan's shortcut)."""
    for stride in range(1, window + 1):
        lengths = list(range(0, (window if one_window_each else 3 * window + 2) + 1))
        plan = plan_windows(tf.constant(lengths), window, stride)
        expected = [(t, s) for t, n in enumerate(lengths) for s in reference_starts(n, window, stride)]
        assert list(zip(plan.text.numpy().tolist(), plan.start.numpy().tolist())) == expected
        assert plan.length.numpy().tolist() == [min(window, lengths[t] - s) for t, s in expected]
        first = {}
        for k, (t, _) in enumerate(expected):
            first.setdefault(t, k)
        owners = [
            first[t] + reference_owner(i, n, reference_starts(n, window, stride), window)
            for t, n in enumerate(lengths)
            for i in range(n)
        ]
        assert plan.char_window.numpy().tolist() == owners
        starts = plan.start.numpy()[owners]
        positions = [i for n in lengths for i in range(n)]
        assert plan.char_offset.numpy().tolist() == (np.array(positions, int) - starts).tolist()


@pytest.mark.parametrize(("window", "stride"), [(62, 31), (14, 7), (10, 3), (9, 9)])
def test_every_character_gets_the_promised_context(window, stride):
    lengths = [0, 1, window, window + 1, 2 * window + 5, 300]
    plan = plan_windows(tf.constant(lengths), window, stride)
    start = plan.start.numpy()[plan.char_window.numpy()]
    end = start + plan.length.numpy()[plan.char_window.numpy()]
    offset = plan.char_offset.numpy()
    position = offset + start
    n = np.repeat(lengths, lengths)
    assert ((offset >= 0) & (position < end)).all()  # the window holds the character
    assert position.tolist() == [i for m in lengths for i in range(m)]  # none lost, in order
    left = np.where(start > 0, position - start, BIG)
    right = np.where(end < n, end - 1 - position, BIG)
    assert np.minimum(left, right).min() >= (window - 1 - stride) // 2


def test_short_texts_are_one_window_from_the_start():
    plan = plan_windows(tf.constant([0, 3, 14]), window=14, stride=7)
    assert plan.start.numpy().tolist() == [0, 0, 0]
    assert plan.length.numpy().tolist() == [0, 3, 14]
    assert plan.char_offset.numpy().tolist() == list(range(3)) + list(range(14))


def test_window_values_and_merge_round_trip():
    texts = tf.ragged.constant([[1, 2, 3], [], list(range(10, 40))])
    plan = plan_windows(texts.row_lengths(), window=8, stride=3)
    windows = window_tokens(texts, plan, cls_id=-2, sep_id=-3)
    for row, (t, s, n) in enumerate(zip(plan.text.numpy(), plan.start.numpy(), plan.length.numpy())):
        assert windows[row].numpy().tolist() == [-2, *texts[t].numpy().tolist()[s : s + n], -3]
    # Scores that are the values themselves, at the windows' characters (a
    # head's positions): merging must give back every character's own value.
    at_chars = windows.to_tensor(-1)[:, 1:]
    assert merge_windows(at_chars, plan).numpy().tolist() == texts.flat_values.numpy().tolist()


def test_merge_keeps_trailing_score_axes():
    plan = plan_windows(tf.constant([5]), window=4, stride=2)
    scores = tf.random.normal([int(plan.start.shape[0]), 6, 3])
    assert merge_windows(scores, plan).shape == (5, 3)


def test_window_settings_are_checked():
    assert default_stride(126) == 63 and default_stride(1) == 1
    for window, stride in [(0, 1), (5, 0), (5, 6)]:
        with pytest.raises(ValueError):
            check_window(window, stride)
    with pytest.raises(ValueError, match="window_stride"):
        plan_windows(tf.constant([3]), 4, 5)


def test_plan_in_a_graph_with_unknown_batch():
    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32)])
    def owners(num_chars):
        return plan_windows(num_chars, 6, 4).char_window

    assert owners(tf.constant([7, 0, 2])).numpy().tolist() == [0] * 4 + [1] * 3 + [3] * 2
    assert owners(tf.zeros([0], tf.int32)).shape == (0,)


def reference_span_window(first: int, last: int, n: int, starts: list[int], window: int) -> int | None:
    """The window where span first..last sits farthest from both window
    edges that are not text edges (the earliest on ties), or None when no
    window holds it."""

    def context(start: int) -> int:
        end = min(start + window, n)
        left = first - start if start > 0 else BIG
        right = end - 1 - last if end < n else BIG
        return min(left, right)

    holding = [k for k, s in enumerate(starts) if s <= first and last < min(s + window, n)]
    return max(holding, key=lambda k: (context(starts[k]), -k)) if holding else None


@pytest.mark.parametrize(("window", "stride"), [(5, 2), (6, 3), (4, 4), (7, 1)])
def test_each_span_is_kept_from_its_best_window_only(window, stride):
    """Every window reports every span it holds (of lengths up to the
    window): exactly one copy of each survives, from the reference's window,
    at text offsets, ordered by text, start, end, type."""
    lengths = [0, 3, window, window + 1, 2 * window + 3, 23]
    plan = plan_windows(tf.constant(lengths), window, stride)
    rows, starts, ends, types = [], [], [], []
    for w, length in enumerate(plan.length.numpy()):
        for s in range(length):
            for e in range(s, length):
                for t in (1, 0):
                    rows.append(w), starts.append(s), ends.append(e), types.append(t)
    spans = Spans(*(tf.constant(x, tf.int32) for x in (rows, starts, ends, types)), tf.constant(ends, tf.float32), None)
    kept = keep_window_spans(spans, plan, window, stride)
    got = list(zip(*(t.numpy().tolist() for t in (kept.row, kept.start, kept.end, kept.type))))
    expected = []
    for text, n in enumerate(lengths):
        text_starts = reference_starts(n, window, stride)
        for s in range(n):
            for e in range(s, min(n, s + window)):
                if reference_span_window(s, e, n, text_starts, window) is not None:
                    expected += [(text, s, e, 0), (text, s, e, 1)]
    assert got == expected
    assert kept.per_row.numpy().tolist() == [sum(r == t for r, *_ in expected) for t in range(len(lengths))]
    # Scores travel with their spans: each is the span's end within its window.
    first_window = {}
    for w, t in enumerate(plan.text.numpy()):
        first_window.setdefault(t, w)
    windows = [
        first_window[t] + reference_span_window(s, e, lengths[t], reference_starts(lengths[t], window, stride), window)
        for t, s, e, _ in got
    ]
    np.testing.assert_array_equal(kept.score.numpy(), np.array([e for _, _, e, _ in got]) - plan.start.numpy()[windows])
