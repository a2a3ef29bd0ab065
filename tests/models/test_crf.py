import itertools
import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from viterbi_reference import stepwise_viterbi

from kner.data.labels import LabelVocab
from kner.data.tags import SCHEMES, TagError, tags_to_spans
from kner.models import crf as crf_module
from kner.models.crf import CRF, FORWARD_UNROLL, allowed_transitions, fits_quadratic_budget, viterbi

BIO_TAGS = ["O", "B-a", "I-a", "B-b", "I-b"]


def make_crf(num_tags, boundary=True, seed=0, **kwargs):
    """A CRF with random (non-zero) transition weights."""
    crf = CRF(num_tags, use_boundary_transitions=boundary, **kwargs)
    rng = np.random.default_rng(seed)
    for weight in crf.weights:
        weight.assign(rng.normal(size=weight.shape).astype("float32"))
    return crf


def crf_params(crf):
    trans = crf.transitions.numpy()
    if crf.use_boundary_transitions:
        return trans, crf.start_transitions.numpy(), crf.end_transitions.numpy()
    zeros = np.zeros(crf.num_tags, np.float32)
    return trans, zeros, zeros


def path_score(potentials, path, trans, start, end):
    score = start[path[0]] + end[path[-1]]
    score += sum(potentials[i, tag] for i, tag in enumerate(path))
    score += sum(trans[a, b] for a, b in itertools.pairwise(path))
    return score


def all_paths(num_tags, length, allowed=None):
    """Every tag path of `length`, restricted to allowed ones when given."""
    for path in itertools.product(range(num_tags), repeat=length):
        if allowed is not None:
            trans_ok, start_ok, end_ok = allowed
            if not (start_ok[path[0]] and end_ok[path[-1]]):
                continue
            if not all(trans_ok[a, b] for a, b in itertools.pairwise(path)):
                continue
        yield path


def random_batch(length, num_tags, seed):
    """Potentials, tags and prefix masks; rows have lengths 0, 1, random, L.

    Padded tags are -1 to check they are ignored.
    """
    rng = np.random.default_rng(seed)
    lengths = np.array([0, 1, rng.integers(1, length + 1), length])
    potentials = rng.normal(size=(len(lengths), length, num_tags)).astype("float32")
    mask = np.arange(length)[None] < lengths[:, None]
    tags = np.where(mask, rng.integers(0, num_tags, size=mask.shape), -1)
    return potentials, tags.astype("int32"), mask, lengths


CASES = [(length, num_tags, boundary) for length in range(1, 6) for num_tags in (3, 4) for boundary in (True, False)]


@pytest.mark.parametrize("length,num_tags,boundary", CASES)
def test_log_likelihood_and_decode_match_brute_force(length, num_tags, boundary):
    crf = make_crf(num_tags, boundary, seed=length)
    potentials, tags, mask, lengths = random_batch(length, num_tags, seed=num_tags)
    params = crf_params(crf)

    log_likelihood = crf.log_likelihood(potentials, tags, mask).numpy()
    decoded, scores = (t.numpy() for t in crf.decode(potentials, mask))
    log_prob = crf.sequence_log_prob(potentials, mask)[1].numpy()

    assert log_likelihood.dtype == np.float32 and scores.dtype == np.float32
    assert decoded.dtype == np.int32
    for row, n in enumerate(lengths):
        if n == 0:
            assert log_likelihood[row] == 0.0 and scores[row] == 0.0
            assert log_prob[row] == 0.0
            assert not decoded[row].any()
            continue
        pots = potentials[row, :n].astype(np.float64)
        paths = list(all_paths(num_tags, n))
        path_scores = np.array([path_score(pots, p, *params) for p in paths])
        log_z = np.logaddexp.reduce(path_scores)
        gold = path_score(pots, tags[row, :n], *params)
        np.testing.assert_allclose(log_likelihood[row], gold - log_z, atol=1e-5)

        best = int(np.argmax(path_scores))
        np.testing.assert_array_equal(decoded[row, :n], paths[best])
        assert not decoded[row, n:].any()
        np.testing.assert_allclose(scores[row], path_scores[best], atol=1e-5)
        np.testing.assert_allclose(log_prob[row], path_scores[best] - log_z, atol=1e-5)


def stepwise_case(length, seed, num_tags=5):
    """Small integer scores (ties are common) on rows of lengths 0, 1, L and random ones."""
    rng = np.random.default_rng(seed)
    lengths = np.array(sorted({0, 1, length, *rng.integers(0, length + 1, size=6)}))
    potentials = rng.integers(-2, 3, size=(len(lengths), length, num_tags)).astype(np.float32)
    trans, start, end = (
        rng.integers(-2, 3, size=s).astype(np.float32) for s in ((num_tags,) * 2, (num_tags,), (num_tags,))
    )
    mask = np.arange(length)[None] < lengths[:, None]
    return (potentials, mask, lengths.astype(np.int32)), (trans, start, end)


@pytest.mark.parametrize("one_at_a_time", [False, True])
@pytest.mark.parametrize("length", [1, 2, 3, FORWARD_UNROLL, FORWARD_UNROLL + 1, FORWARD_UNROLL + 2, 37, 70])
def test_viterbi_equals_the_stepwise_recursion(length, one_at_a_time):
    """Unrolled forward blocks and either backtrace (a batch's step by step,
    a single text's by pointer doubling) give the step-by-step recursion's
    tags exactly, ties included (small integer scores tie often), on rows of
    every length up to L."""
    inputs, params = stepwise_case(length, seed=length)
    if one_at_a_time:
        rows = [viterbi(*(tf.constant(x[i : i + 1]) for x in inputs), *params) for i in range(len(inputs[2]))]
        tags, scores = (tf.concat(parts, axis=0) for parts in zip(*rows))
    else:
        tags, scores = viterbi(*(tf.constant(x) for x in inputs), *params)
    expected_tags, expected_scores = stepwise_viterbi(inputs[0], inputs[2], *params)
    np.testing.assert_array_equal(tags.numpy(), expected_tags)
    np.testing.assert_array_equal(scores.numpy(), expected_scores)


@pytest.mark.parametrize("budget", ["default", "none"])
@pytest.mark.parametrize("length", [1, 2, FORWARD_UNROLL + 1, 37])
def test_viterbi_in_a_graph_of_unknown_shapes_equals_the_stepwise_recursion(length, budget, monkeypatch):
    """Under a `tf.function` whose batch and length are unknown (the
    SavedModel's case) the backtrace is picked by a `tf.cond` at run time:
    a single text by pointer doubling when its [L, 1, T, T] table fits the
    budget, else step by step (budget 0), a batch step by step; all give
    the recursion's tags and scores exactly."""
    if budget == "none":
        monkeypatch.setattr(crf_module, "QUADRATIC_BUDGET_BYTES", 0)
    inputs, params = stepwise_case(length, seed=length)
    num_tags = inputs[0].shape[-1]
    spec = [
        tf.TensorSpec([None, None, num_tags], tf.float32),
        tf.TensorSpec([None, None], tf.bool),
        tf.TensorSpec([None], tf.int32),
    ]
    decode = tf.function(lambda p, m, n: viterbi(p, m, n, *params), input_signature=spec)
    rows = [decode(*(x[i : i + 1] for x in inputs)) for i in range(len(inputs[2]))]
    for tags, scores in [tuple(tf.concat(parts, axis=0) for parts in zip(*rows)), decode(*inputs)]:
        expected_tags, expected_scores = stepwise_viterbi(inputs[0], inputs[2], *params)
        np.testing.assert_array_equal(tags.numpy(), expected_tags)
        np.testing.assert_array_equal(scores.numpy(), expected_scores)


def test_the_quadratic_budget_rule_on_ints_and_tensors():
    cases = [(1, 512, 41), (1, 16_000, 10), (1, 4_000, 41), (1, 4_000, 265), (1, 16_000, 265), (32, 512, 41)]
    expected = [True, True, False, False, False, False]
    assert [fits_quadratic_budget(*case) for case in cases] == expected
    assert [bool(fits_quadratic_budget(*(tf.constant(d) for d in case))) for case in cases] == expected
    limit = crf_module.QUADRATIC_BUDGET_BYTES // 4  # float32 elements
    assert fits_quadratic_budget(1, limit, 1) and not fits_quadratic_budget(1, limit + 1, 1)


@pytest.mark.slow
@pytest.mark.parametrize("graph", [False, True], ids=["eager", "graph"])
def test_one_long_text_with_many_tags_decodes_in_linear_memory(graph):
    """One text of 4,000 characters and 265 tags (66 types in BIOES): the
    peak RSS a child process gains while decoding it, eagerly (shapes known)
    or in a graph of unknown shapes (the SavedModel's path), stays far below
    the 1.1 GB of a [L, 1, T, T] float32 pointer table (kmkurn/pytorch-crf#35);
    the scores kept ([L, T] float32) are 4 MiB. Each in its own process: a
    peak, once reached, hides later ones."""
    script = textwrap.dedent(
        f"""
        import resource
        import numpy as np
        import tensorflow as tf
        from kner.models.crf import viterbi

        steps, tags = 4000, 265
        rng = np.random.default_rng(0)
        params = [tf.constant(rng.normal(size=s).astype(np.float32)) for s in ((tags, tags), (tags,), (tags,))]
        spec = [
            tf.TensorSpec([None, None, tags]), tf.TensorSpec([None, None], tf.bool), tf.TensorSpec([None], tf.int32)
        ]
        decode = lambda p, m, n: viterbi(p, m, n, *params)
        if {graph}:
            decode = tf.function(decode, input_signature=spec)
        decode(tf.zeros([1, 3, tags]), tf.ones([1, 3], tf.bool), tf.constant([3]))  # warm-up
        potentials = tf.constant(rng.normal(size=(1, steps, tags)).astype(np.float32))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        decode(potentials, tf.ones([1, steps], tf.bool), tf.constant([steps]))[0].numpy()
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    growth = float(result.stdout)
    assert growth < 200, f"peak RSS grew by {growth:.0f} MiB"


@pytest.mark.parametrize("scheme", ["bio", "bioes"])
def test_constrained_decode_matches_restricted_brute_force(scheme):
    tag_names = BIO_TAGS if scheme == "bio" else ["O", "B-a", "I-a", "E-a", "S-a"]
    allowed = allowed_transitions(tag_names, scheme)
    num_tags, length = len(tag_names), 4
    crf = make_crf(
        num_tags,
        allowed_transitions=allowed[0],
        allowed_start=allowed[1],
        allowed_end=allowed[2],
    )
    potentials, _, mask, lengths = random_batch(length, num_tags, seed=7)
    potentials *= 3.0  # make unconstrained optima likely to be disallowed
    decoded, scores = (t.numpy() for t in crf.decode(potentials, mask))
    params = crf_params(crf)
    for row, n in enumerate(lengths[1:], start=1):
        pots = potentials[row, :n]
        paths = list(all_paths(num_tags, n, allowed))
        path_scores = [path_score(pots, p, *params) for p in paths]
        best = int(np.argmax(path_scores))
        np.testing.assert_array_equal(decoded[row, :n], paths[best])
        np.testing.assert_allclose(scores[row], path_scores[best], atol=1e-4)


def test_bio_constraints_never_decode_o_to_i():
    trans, start, end = allowed_transitions(BIO_TAGS, "bio")
    crf = make_crf(len(BIO_TAGS), allowed_transitions=trans, allowed_start=start, allowed_end=end)
    rng = np.random.default_rng(1)
    potentials = rng.normal(size=(32, 12, len(BIO_TAGS))).astype("float32")
    potentials[:, :, [2, 4]] += 3.0  # I-a and I-b dominate the unary scores
    lengths = rng.integers(1, 13, size=32)
    mask = np.arange(12)[None] < lengths[:, None]

    unconstrained = CRF(len(BIO_TAGS))(potentials, mask).numpy()
    decoded = crf(potentials, mask).numpy()

    def violations(tags):
        bad = 0
        for row, n in zip(tags, lengths):
            bad += not start[row[0]]
            bad += sum(not trans[a, b] for a, b in itertools.pairwise(row[:n]))
        return bad

    assert violations(unconstrained) > 0
    assert violations(decoded) == 0


@pytest.mark.parametrize("length", [1, 6, FORWARD_UNROLL + 1, 2 * FORWARD_UNROLL + 3])
def test_xla_matches_eager(length):
    crf = make_crf(4, allowed_transitions=~np.eye(4, k=1, dtype=bool))
    potentials, tags, mask, _ = random_batch(length, 4, seed=3)
    log_likelihood = tf.function(crf.log_likelihood, jit_compile=True)
    decode = tf.function(crf.decode, jit_compile=True)

    np.testing.assert_allclose(
        log_likelihood(potentials, tags, mask),
        crf.log_likelihood(potentials, tags, mask),
        atol=1e-5,
    )
    xla_tags, xla_scores = decode(potentials, mask)
    eager_tags, eager_scores = crf.decode(potentials, mask)
    np.testing.assert_array_equal(xla_tags, eager_tags)
    np.testing.assert_allclose(xla_scores, eager_scores, atol=1e-5)


def test_gradient_is_observed_minus_expected_counts():
    num_tags, length = 3, 4
    crf = make_crf(num_tags, seed=5)
    potentials, tags, mask, lengths = random_batch(length, num_tags, seed=5)
    potentials_var = tf.Variable(potentials)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(crf.log_likelihood(potentials_var, tags, mask))
    grads = tape.gradient(total, [potentials_var, *crf.weights])
    grads = [g.numpy() for g in grads]
    assert all(np.isfinite(g).all() for g in grads)

    params = crf_params(crf)
    expected = [np.zeros_like(potentials), *(np.zeros_like(w) for w in params)]

    def add_counts(counts, row, path, weight):
        pot_grad, trans_grad, start_grad, end_grad = counts
        for i, tag in enumerate(path):
            pot_grad[row, i, tag] += weight
        for a, b in itertools.pairwise(path):
            trans_grad[a, b] += weight
        start_grad[path[0]] += weight
        end_grad[path[-1]] += weight

    for row, n in enumerate(lengths):
        if n == 0:
            continue
        paths = list(all_paths(num_tags, n))
        scores = np.array([path_score(potentials[row, :n], p, *params) for p in paths])
        probs = np.exp(scores - np.logaddexp.reduce(scores))
        add_counts(expected, row, tags[row, :n], 1.0)
        for path, prob in zip(paths, probs):
            add_counts(expected, row, path, -prob)

    for grad, want in zip(grads, expected):
        np.testing.assert_allclose(grad, want, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_potentials_compute_in_float32(dtype):
    crf = make_crf(4)
    potentials, tags, mask, _ = random_batch(5, 4, seed=9)
    low = tf.cast(potentials, dtype)
    rounded = tf.cast(low, "float32")

    log_likelihood = crf.log_likelihood(low, tags, mask)
    decoded, scores = crf.decode(low, mask)

    assert log_likelihood.dtype == tf.float32 and scores.dtype == tf.float32
    np.testing.assert_allclose(log_likelihood, crf.log_likelihood(rounded, tags, mask), atol=1e-5)
    np.testing.assert_allclose(log_likelihood, crf.log_likelihood(potentials, tags, mask), atol=0.1)
    np.testing.assert_array_equal(decoded, crf.decode(rounded, mask)[0])


def test_mixed_precision_policy_keeps_float32_weights():
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        crf = CRF(3)
        potentials = tf.ones((1, 2, 3), "float16")
        assert crf(potentials).dtype == tf.int32
        assert crf.transitions.dtype == "float32"
        assert crf.log_likelihood(potentials, [[0, 1]], [[1, 1]]).dtype == tf.float32
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


def test_layer_call_in_functional_model():
    crf = make_crf(4)
    inputs = keras.Input((None, 4))
    model = keras.Model(inputs, crf(inputs))
    potentials = random_batch(5, 4, seed=2)[0]
    assert model.output.dtype == "int32"
    np.testing.assert_array_equal(model(potentials), crf.decode(potentials)[0])


def test_config_round_trip_keeps_constraints():
    trans, start, end = allowed_transitions(BIO_TAGS, "bio")
    crf = make_crf(len(BIO_TAGS), allowed_transitions=trans, allowed_start=start, allowed_end=end)
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(crf)))
    restored = keras.saving.deserialize_keras_object(serialized)
    restored.set_weights(crf.get_weights())

    np.testing.assert_array_equal(restored.allowed_transitions, trans)
    np.testing.assert_array_equal(restored.allowed_start, start)
    np.testing.assert_array_equal(restored.allowed_end, end)
    assert isinstance(restored, CRF)
    assert restored.get_config() == crf.get_config()
    potentials = np.random.default_rng(0).normal(size=(3, 6, 5)).astype("float32")
    np.testing.assert_array_equal(restored(potentials), crf(potentials))


def test_rejects_constraints_of_wrong_shape():
    with pytest.raises(ValueError, match="allowed_start"):
        CRF(3, allowed_start=np.ones(4, bool))


@pytest.mark.slow
def test_saved_model_serves_with_tensorflow_only(tmp_path):
    trans, start, end = allowed_transitions(BIO_TAGS, "bio")
    crf = make_crf(len(BIO_TAGS), allowed_transitions=trans, allowed_start=start, allowed_end=end)

    class Server(tf.Module):
        def __init__(self, crf):
            super().__init__()
            self.crf = crf

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, None, len(BIO_TAGS)], tf.float32),
                tf.TensorSpec([None, None], tf.bool),
            ]
        )
        def decode(self, potentials, mask):
            tags, scores = self.crf.decode(potentials, mask)
            return {"tags": tags, "scores": scores}

    server = Server(crf)
    export_dir = str(tmp_path / "crf")
    tf.saved_model.save(server, export_dir, signatures={"serving_default": server.decode})

    potentials, _, mask, _ = random_batch(7, len(BIO_TAGS), seed=4)
    potentials *= 3.0
    np.save(tmp_path / "potentials.npy", potentials)
    np.save(tmp_path / "mask.npy", mask)
    script = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        import tensorflow as tf
        preloaded = set(sys.modules)  # `import tensorflow` pulls in keras utils
        serve = tf.saved_model.load({export_dir!r}).signatures["serving_default"]
        out = serve(
            potentials=tf.constant(np.load({str(tmp_path / "potentials.npy")!r})),
            mask=tf.constant(np.load({str(tmp_path / "mask.npy")!r})),
        )
        np.save({str(tmp_path / "tags.npy")!r}, out["tags"].numpy())
        loaded = set(sys.modules) - preloaded
        assert not [m for m in loaded if m.startswith(("kner", "keras"))], loaded
        assert "kner" not in sys.modules
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)

    served = np.load(tmp_path / "tags.npy")
    np.testing.assert_array_equal(served, crf.decode(potentials, mask)[0])


def test_allowed_transitions_bio():
    trans, start, end = allowed_transitions(BIO_TAGS, "bio")
    o, b_a, i_a, b_b, i_b = range(5)
    assert trans[b_a, i_a] and trans[i_a, i_a] and trans[i_a, b_b]
    assert trans[o, o] and trans[o, b_a] and trans[i_b, o]
    assert not trans[o, i_a] and not trans[b_b, i_a] and not trans[i_b, i_a]
    np.testing.assert_array_equal(start, [True, True, False, True, False])
    assert end.all()


def scheme_tags(scheme):
    """Every tag of `scheme` for two types (one with a dash in its name)."""
    return LabelVocab.from_types(["a", "b-c"], scheme).tags


def strict_accepts(tags, scheme):
    try:
        tags_to_spans(tags, scheme, strict=True)
    except TagError:
        return False
    return True


@pytest.mark.parametrize("scheme", SCHEMES)
def test_decoder_allows_exactly_what_the_strict_reader_accepts(scheme):
    """Every sequence of up to 4 tags (over two types) is a path the decoder
    allows exactly when the strict reader accepts it; and each (previous,
    current) pair, first tag and last tag is allowed exactly when some
    accepted sequence holds it. Four tags suffice: any tag is completed into
    a valid sequence by at most one tag on each side."""
    names = scheme_tags(scheme)
    trans, start, end = allowed_transitions(names, scheme)
    pairs, firsts, lasts = set(), set(), set()
    for length in range(1, 5):
        for path in itertools.product(range(len(names)), repeat=length):
            accepted = strict_accepts([names[i] for i in path], scheme)
            allowed = start[path[0]] and end[path[-1]] and all(trans[a, b] for a, b in itertools.pairwise(path))
            assert allowed == accepted, [names[i] for i in path]
            if accepted:
                pairs.update(itertools.pairwise(path))
                firsts.add(path[0])
                lasts.add(path[-1])
    for i, j in itertools.product(range(len(names)), repeat=2):
        assert bool(trans[i, j]) == ((i, j) in pairs), (names[i], names[j])
    for i, name in enumerate(names):
        assert bool(start[i]) == (i in firsts), name
        assert bool(end[i]) == (i in lasts), name


def test_bios_forbids_a_lone_begin_tag():
    """Issue 11: in bios a one-character entity is S-x, so B-x must be
    followed by I-x; the decoder used to allow B-x O, B-x B-y, B-x S-y and a
    final B-x."""
    names = ["O", "B-name", "I-name", "S-name", "B-x", "S-x"]
    trans, start, end = allowed_transitions(names, "bios")
    np.testing.assert_array_equal(np.flatnonzero(trans[1]), [2])
    assert not end[1] and end[2] and end[3]
    assert trans[2, 0] and trans[2, 4] and trans[3, 1]


@pytest.mark.parametrize("scheme", SCHEMES)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_viterbi_output_is_always_strictly_valid(scheme, data):
    """Random potentials (and transition weights) and masks: every decoded
    row is a sequence the strict reader accepts."""
    names = scheme_tags(scheme)
    seed = data.draw(st.integers(0, 2**16))
    length = data.draw(st.integers(1, 9))
    lengths = data.draw(st.lists(st.integers(0, length), min_size=1, max_size=4))
    rng = np.random.default_rng(seed)
    trans, start, end = allowed_transitions(names, scheme)
    crf = make_crf(len(names), seed=seed, allowed_transitions=trans, allowed_start=start, allowed_end=end)
    potentials = (rng.normal(size=(len(lengths), length, len(names))) * 5).astype("float32")
    mask = np.arange(length)[None] < np.array(lengths)[:, None]
    decoded = crf.decode(potentials, mask)[0].numpy()
    for row, n in zip(decoded, lengths, strict=True):
        assert strict_accepts([names[i] for i in row[:n]], scheme)
        assert not row[n:].any()


@pytest.mark.parametrize("scheme,inside", [("bioes", "I"), ("bmes", "M")])
def test_allowed_transitions_bioes_and_bmes(scheme, inside):
    names = ["O", "B-org-x", f"{inside}-org-x", "E-org-x", "S-org-x", "B-y", "E-y"]
    trans, start, end = allowed_transitions(names, scheme)
    o, b, i, e, s, b_y, e_y = range(7)
    np.testing.assert_array_equal(np.flatnonzero(trans[b]), [i, e])
    np.testing.assert_array_equal(np.flatnonzero(trans[i]), [i, e])
    for prev in (o, e, s, e_y):
        np.testing.assert_array_equal(np.flatnonzero(trans[prev]), [o, b, s, b_y])
    np.testing.assert_array_equal(np.flatnonzero(trans[b_y]), [e_y])
    np.testing.assert_array_equal(np.flatnonzero(start), [o, b, s, b_y])
    np.testing.assert_array_equal(np.flatnonzero(end), [o, e, s, e_y])


def test_allowed_transitions_rejects_bad_input():
    with pytest.raises(ValueError, match="scheme"):
        allowed_transitions(["O"], "iob2")
    with pytest.raises(ValueError, match="'E-a'"):
        allowed_transitions(["O", "E-a"], "bio")
    with pytest.raises(ValueError, match="'M-a'"):
        allowed_transitions(["O", "M-a"], "bioes")
    with pytest.raises(ValueError, match="'B'"):
        allowed_transitions(["B"], "bio")
