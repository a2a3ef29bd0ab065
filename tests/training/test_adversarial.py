"""FGM and PGD: the perturbations on their own (eager, a toy loss over an
embedding table), then one training step of a tiny tagger against a hand
computation, under loss scaling, XLA and 16-bit policies, across a resume,
and under MirroredStrategy (a child process: tests/strategy_child.py)."""

import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from tagger_dirs import TYPES, tiny_config, toy_vocabulary
from train_runs import REPO, child_env, toy_sentences

from kner.checkpoint import backbone_from_config
from kner.data.labels import LabelVocab
from kner.data.pipeline import batched, encode
from kner.data.tokenizer import CharTokenizer
from kner.models import artifacts
from kner.models.tagger import Tagger
from kner.training.adversarial import FGM, METHODS, PGD, build_adversary, word_embeddings
from kner.training.optimization import CrossReplicaLossScaleOptimizer
from kner.training.trainer import TrainConfig, Trainer, TrainingStopped

# ---- the perturbations on their own -----------------------------------------

IDS = tf.constant([1, 3, 3, 5])  # token 3 twice: its gradient comes as two rows


class ToyLoss:
    """loss = sum(tanh(E[IDS] @ w) * target): `gradients_at` for an adversary
    over E, recording the E it was called at."""

    def __init__(self, seed: int = 0, scale: float = 1.0):
        rng = np.random.default_rng(seed)
        self.embeddings = keras.Variable(rng.normal(size=(7, 4)).astype(np.float32), name="embeddings")
        self.kernel = keras.Variable(rng.normal(size=(4, 3)).astype(np.float32), name="kernel")
        self.target = tf.constant(rng.normal(size=(4, 3)).astype(np.float32))
        self.variables = [self.kernel, self.embeddings]
        self.scale = scale  # the loss scale the gradients carry
        self.seen: list[np.ndarray] = []  # E at each call

    def __call__(self, embeddings_only: bool) -> list:
        self.seen.append(self.embeddings.numpy().copy())
        variables = [self.embeddings] if embeddings_only else self.variables
        with tf.GradientTape() as tape:
            outputs = tf.tanh(tf.gather(self.embeddings, IDS) @ self.kernel)
            loss = tf.reduce_sum(outputs * self.target) * self.scale
        return tape.gradient(loss, variables)


def dense(gradients) -> list[np.ndarray]:
    return [tf.convert_to_tensor(g).numpy() for g in gradients]


@pytest.mark.parametrize("scale", [1.0, 2.0**15])
def test_fgm_moves_the_embeddings_by_epsilon_along_the_gradient_and_restores_them_exactly(scale):
    toy = ToyLoss(scale=scale)
    original = toy.embeddings.numpy().copy()
    clean = toy(False)
    assert isinstance(clean[1], tf.IndexedSlices) and len(clean[1].indices) == 4
    applied = FGM(toy.embeddings, epsilon=0.7).gradients(clean, toy.variables, toy, scale)
    (at,) = toy.seen[1:]  # one more pass
    perturbation = at - original
    g = dense(clean)[1]  # token 3's two rows summed
    np.testing.assert_allclose(np.linalg.norm(perturbation), 0.7, rtol=1e-6)
    np.testing.assert_allclose(perturbation, 0.7 * g / np.linalg.norm(g), rtol=1e-5, atol=1e-7)
    assert np.count_nonzero(np.abs(perturbation).sum(axis=1)) == 3  # the rows of tokens 1, 3, 5
    assert np.array_equal(toy.embeddings.numpy(), original)  # bit for bit
    toy.embeddings.assign(at)
    adversarial = dense(toy(False))
    for result, c, a in zip(dense(applied), dense(clean), adversarial):
        np.testing.assert_allclose(result, c + a, rtol=1e-6)
    assert np.abs(adversarial[0] - dense(clean)[0]).max() > 1e-3  # the perturbation changed the loss


@pytest.mark.parametrize("bad", [0.0, np.inf])
def test_a_zero_or_overflowed_gradient_moves_nothing(bad):
    toy = ToyLoss()
    original = toy.embeddings.numpy().copy()
    clean = [np.full_like(g, bad) for g in dense(toy(False))]
    FGM(toy.embeddings).gradients(clean, toy.variables, toy, 1.0)
    assert np.array_equal(toy.seen[-1], original)


def test_pgd_iterates_stay_within_epsilon_and_the_last_pass_is_applied():
    toy = ToyLoss(seed=1)
    original = toy.embeddings.numpy().copy()
    clean = toy(False)
    applied = PGD(toy.embeddings, epsilon=1.0, steps=5, alpha=0.6).gradients(clean, toy.variables, toy, 1.0)
    norms = [np.linalg.norm(at - original) for at in toy.seen[1:]]
    assert len(norms) == 5  # K passes after the clean one
    assert max(norms) <= 1.0 + 1e-6
    assert norms[0] == pytest.approx(0.6, rel=1e-6) and norms[-1] == pytest.approx(1.0, rel=1e-6)  # projected
    assert np.array_equal(toy.embeddings.numpy(), original)
    toy.embeddings.assign(toy.seen[-1])
    for result, c, a in zip(dense(applied), dense(clean), dense(toy(False))):
        np.testing.assert_allclose(result, c + a, rtol=1e-6)


def test_pgd_with_one_step_of_epsilon_is_fgm():
    results = []
    for make in (lambda e: FGM(e, epsilon=0.8), lambda e: PGD(e, epsilon=0.8, steps=1, alpha=0.8)):
        toy = ToyLoss(seed=2)
        applied = make(toy.embeddings).gradients(toy(False), toy.variables, toy, 1.0)
        results.append((toy.seen[1:], dense(applied)))
    (fgm_seen, fgm), (pgd_seen, pgd) = results
    assert len(fgm_seen) == len(pgd_seen) == 1
    np.testing.assert_allclose(pgd_seen[0], fgm_seen[0], rtol=1e-6)
    for a, b in zip(pgd, fgm):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_build_adversary_takes_the_options_of_its_method():
    model = tiny_tagger()
    assert METHODS == ("none", "fgm", "pgd")
    assert build_adversary("none", model) is None
    pgd = build_adversary("pgd", model, epsilon=0.5, steps=2, alpha=0.1)
    assert (pgd.epsilon, pgd.steps, pgd.alpha, pgd.passes) == (0.5, 2, 0.1, 2)
    assert pgd.embeddings is model.backbone.token_embedding.embeddings
    assert build_adversary("fgm", model, epsilon=0.5, steps=2).passes == 1
    with pytest.raises(ValueError, match="must be one of none, fgm, pgd"):
        build_adversary("free", model)
    with pytest.raises(ValueError, match="epsilon must be > 0"):
        build_adversary("fgm", model, epsilon=0.0)
    with pytest.raises(ValueError, match="no backbone word embeddings"):
        word_embeddings(keras.Sequential())


# ---- one training step of a tiny tagger ---------------------------------------

CONFIG = TrainConfig(batch_size=4, epochs=1, checkpoint_every=0, log_every=1, seed=3)
SETTINGS = {"fgm": {"epsilon": 1.0}, "pgd": {"epsilon": 1.0, "steps": 2, "alpha": 0.7}}


def tiny_tagger(head: str = "softmax", dropout: float = 0.0) -> Tagger:
    keras.utils.set_random_seed(0)
    config = {**tiny_config(len(toy_vocabulary())), "hidden_dropout_prob": dropout}
    model = Tagger(backbone_from_config(config), LabelVocab.from_types(TYPES, "bios"), head=head, dropout=dropout)
    model(artifacts.dummy_batch())
    return model


def first_batch(model: Tagger) -> dict[str, tf.Tensor]:
    tokenizer = CharTokenizer(toy_vocabulary())
    data = encode(toy_sentences(4, seed=5), tokenizer, model.targets)
    return next(iter(batched(data, tokenizer, 4)))


def trainer_step(model, optimizer, adversary, tmp_path, jit_compile: bool = False) -> list[np.ndarray]:
    """The weights after one `Trainer.train_step` on `first_batch`."""
    optimizer.build(model.trainable_variables)
    config = TrainConfig(jit_compile=jit_compile)
    trainer = Trainer(model, optimizer, tf.distribute.get_strategy(), tmp_path, config, adversary=adversary)
    tf.function(trainer.train_step)(first_batch(model))
    return [w.numpy() for w in model.trainable_variables]


def loss_gradients(model: Tagger, batch) -> list[np.ndarray]:
    with tf.GradientTape() as tape:
        loss = model.loss_sum(batch, model(batch, training=True)) / model.loss_count(batch)
    return dense(tape.gradient(loss, model.trainable_variables))


def hand_step(model: Tagger, method: str, learning_rate: float) -> list[np.ndarray]:
    """SGD on clean + adversarial gradients, computed here from the formulas."""
    batch, embeddings = first_batch(model), model.backbone.token_embedding.embeddings
    index = next(i for i, v in enumerate(model.trainable_variables) if v is embeddings)
    original = embeddings.numpy().copy()
    clean = loss_gradients(model, batch)
    settings, gradient, perturbation = SETTINGS[method], clean[index], np.zeros_like(original)
    steps, alpha = settings.get("steps", 1), settings.get("alpha", settings["epsilon"])
    for _ in range(steps):
        perturbation = perturbation + alpha * gradient / np.linalg.norm(gradient)
        perturbation *= min(1.0, settings["epsilon"] / np.linalg.norm(perturbation))
        embeddings.assign(original + perturbation)
        gradients = loss_gradients(model, batch)
        gradient = gradients[index]
    embeddings.assign(original)
    return [w.numpy() - learning_rate * (c + a) for w, c, a in zip(model.trainable_variables, clean, gradients)]


def max_difference(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


@pytest.mark.parametrize(
    ("method", "head"), [("fgm", "softmax"), ("pgd", "softmax"), ("fgm", "crf"), ("pgd", "crf"), ("fgm", "span")]
)
def test_one_step_applies_the_clean_plus_adversarial_gradients(tmp_path, method, head):
    model = tiny_tagger(head)
    start = model.get_weights()
    expected = hand_step(model, method, learning_rate=0.1)
    assert [np.array_equal(a, b) for a, b in zip(model.get_weights(), start)] == [True] * len(start)
    adversary = build_adversary(method, model, **SETTINGS[method])
    weights = trainer_step(model, keras.optimizers.SGD(0.1), adversary, tmp_path)
    assert max_difference(weights, expected) < 1e-6
    model.set_weights(start)
    clean = trainer_step(model, keras.optimizers.SGD(0.1), None, tmp_path / "clean")
    assert max_difference(clean, expected) > 1e-4  # the adversarial gradients count


def test_loss_scaling_perturbs_by_the_unscaled_gradient_and_applies_the_scaled_sum(tmp_path):
    model = tiny_tagger()
    start = model.get_weights()
    plain = trainer_step(model, keras.optimizers.SGD(0.1), build_adversary("pgd", model, **SETTINGS["pgd"]), tmp_path)
    model.set_weights(start)
    optimizer = CrossReplicaLossScaleOptimizer(keras.optimizers.SGD(0.1))  # scale 2**15
    scaled = trainer_step(model, optimizer, build_adversary("pgd", model, **SETTINGS["pgd"]), tmp_path / "scaled")
    assert max_difference(scaled, plain) < 1e-7


def test_jit_compile_takes_the_same_step(tmp_path):
    model = tiny_tagger("crf")
    start = model.get_weights()
    eager = trainer_step(model, keras.optimizers.SGD(0.1), build_adversary("fgm", model), tmp_path)
    model.set_weights(start)
    compiled = trainer_step(model, keras.optimizers.SGD(0.1), build_adversary("fgm", model), tmp_path / "xla", True)
    assert max_difference(compiled, eager) < 1e-6


@pytest.fixture
def policy():
    """Sets a global dtype policy for the test; float32 again after it."""
    yield keras.mixed_precision.set_global_policy
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("name", ["mixed_bfloat16", "mixed_float16"])
def test_16_bit_policies_take_the_float32_step_and_restore_the_embeddings(tmp_path, policy, name):
    model = tiny_tagger()
    start, trained = model.get_weights(), [v.numpy() for v in model.trainable_variables]
    expected = trainer_step(model, keras.optimizers.SGD(0.1), build_adversary("fgm", model), tmp_path)
    policy(name)
    model = tiny_tagger()
    model.set_weights(start)
    wrap = CrossReplicaLossScaleOptimizer if name == "mixed_float16" else lambda optimizer: optimizer
    weights = trainer_step(model, wrap(keras.optimizers.SGD(0.1)), build_adversary("fgm", model), tmp_path / "16")
    steps = [w - s for w, s in zip(weights, trained)]
    expected_steps = [w - s for w, s in zip(expected, trained)]
    error = np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(steps, expected_steps)))
    assert error < 0.02 * np.sqrt(sum(np.sum(b**2) for b in expected_steps))
    # With a zero rate nothing moves: the embeddings came back bit for bit.
    model.set_weights(start)
    frozen = trainer_step(model, wrap(keras.optimizers.SGD(0.0)), build_adversary("fgm", model), tmp_path / "0")
    assert all(np.array_equal(w, s) for w, s in zip(frozen, trained))


class StopAt:
    """Requests a stop once the trainer has taken `step` steps."""

    def __init__(self, step: int):
        self.step, self.trainer = step, None

    @property
    def requested(self) -> bool:
        return int(self.trainer.step.numpy()) >= self.step


def test_resumes_mid_epoch_to_the_weights_of_an_uninterrupted_run(tmp_path):
    train = toy_sentences(12, seed=1)
    config = TrainConfig(batch_size=4, epochs=2, checkpoint_every=0)
    tokenizer = CharTokenizer(toy_vocabulary())

    def trainer(model_dir):
        model = tiny_tagger(dropout=0.1)  # dropout draws new masks in every pass
        optimizer = keras.optimizers.AdamW(1e-3)
        optimizer.build(model.trainable_variables)
        adversary = build_adversary("pgd", model, **SETTINGS["pgd"])
        return Trainer(model, optimizer, tf.distribute.get_strategy(), model_dir, config, adversary=adversary)

    whole = trainer(tmp_path / "whole")
    whole.fit(train, None, tokenizer)
    stopped, stop = trainer(tmp_path / "cut"), StopAt(4)
    stop.trainer = stopped
    with pytest.raises(TrainingStopped):
        stopped.fit(train, None, tokenizer, stop=stop)
    assert 0 < int(stopped.step.numpy()) < int(whole.step.numpy())
    resumed = trainer(tmp_path / "cut")
    resumed.fit(train, None, tokenizer)
    assert int(resumed.step.numpy()) == int(whole.step.numpy())
    assert max_difference(resumed.model.get_weights(), whole.model.get_weights()) < 1e-6
    assert max_difference(stopped.model.get_weights(), whole.model.get_weights()) > 1e-4


# ---- MirroredStrategy (two logical CPUs) ---------------------------------------

RUNS = ["default-softmax-0.1-kner-fgm", "mirrored-softmax-0.1-kner-fgm", "default-crf-0.1-kner-pgd"]
RUNS += ["mirrored-crf-0.1-kner-pgd", "default-crf-0.1-kner", "default-span-0.1-kner-fgm", "mirrored-span-0.1-kner-fgm"]


@pytest.fixture(scope="module")
def strategy_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("adversarial_strategies")
    command = [sys.executable, str(REPO / "tests" / "strategy_child.py"), str(out), *RUNS]
    result = subprocess.run(command, cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def load_run(path):
    with np.load(path) as dump:
        return dump["losses"], [dump[f"w{i}"] for i in range(len(dump.files) - 2)], float(dump["replica_spread"])


# Float rounding of the replicas' sums, as weights move after 3 steps. The
# span head's end layer (LayerNorm over a tanh layer, at 10x the rate)
# amplifies it at the FGM point, whose gradients move the weights 0.04 away
# from a clean run's: 1.9e-6 measured (3e-8 without FGM, 5e-7 with PGD).
TOLERANCE = {"softmax-0.1-kner-fgm": 1e-6, "crf-0.1-kner-pgd": 1e-6, "span-0.1-kner-fgm": 1e-5}


@pytest.mark.slow
@pytest.mark.parametrize("run", list(TOLERANCE))
def test_mirrored_strategy_takes_the_same_adversarial_steps_as_one_device(strategy_runs, run):
    losses, weights, _ = load_run(strategy_runs / f"default-{run}.npz")
    mirrored_losses, mirrored_weights, spread = load_run(strategy_runs / f"mirrored-{run}.npz")
    assert len(losses) == 3
    np.testing.assert_allclose(mirrored_losses, losses, rtol=1e-5)
    assert max_difference(mirrored_weights, weights) < TOLERANCE[run]
    assert spread == 0.0  # both replicas moved their embeddings by the same perturbation
    _, clean, _ = load_run(strategy_runs / "default-crf-0.1-kner.npz")
    if run.startswith("crf"):
        assert max_difference(clean, weights) > 1e-4
