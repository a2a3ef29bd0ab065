import random
import subprocess
import sys

import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from tagger_dirs import cached_export, toy_dir, toy_nested_sentence
from train_runs import REPO, child_env

import kner
from kner.errors import InputError
from kner.serving.predictor import Entity, Predictor, find_export

TRICKY = [
    "",
    " ",
    "\t \n",
    "\u3000\u3000",
    "😀",
    "张三😀北京",
    "\U0002a6a5李小四",  # an astral CJK character
    "ａｂｃ１２３ABC张三xyz",
    "\x00\x01\x1b\x7f上海市",
    "\ud800张三\udfff",  # lone surrogates
    "\ud83d\ude00",  # a surrogate pair as two code points
    "\r\n王五\r",
]


@pytest.fixture(scope="module")
def exported(export_dir):
    return Predictor.from_dir(export_dir)


def check(texts, predictions):
    assert len(predictions) == len(texts)
    for text, prediction in zip(texts, predictions):
        assert len(prediction.tags) == len(text)
        assert all(tag == "O" or tag[:2] in ("B-", "I-", "S-") for tag in prediction.tags)
        for entity in prediction.entities:
            assert 0 <= entity.start <= entity.end < len(text)
            assert text[entity.start : entity.end + 1] == entity.text
            assert 0 < entity.score <= 1


def same(got, expected) -> bool:
    """Equal tags and entities, scores within float rounding (batches of
    other shapes round differently)."""

    def exact(predictions):
        return [(p.tags, [e[:4] for e in p.entities]) for p in predictions]

    scores = [e.score for p in got for e in p.entities]
    return exact(got) == exact(expected) and scores == pytest.approx([e.score for p in expected for e in p.entities])


def test_predict_finds_the_entities(in_process):
    (entities,) = in_process.predict(["张三在北京"])
    assert [(e.type, e.start, e.end, e.text) for e in entities] == [("name", 0, 1, "张三"), ("loc", 3, 4, "北京")]
    assert all(isinstance(e, Entity) and e.score > 0.5 for e in entities)


def test_lazy_public_names():
    assert kner.Predictor is Predictor and kner.Entity is Entity
    with pytest.raises(AttributeError):
        kner.Nothing  # noqa: B018


def test_model_dir_and_exports_agree(in_process, exported, export_dir):
    texts = TRICKY + ["张三在北京" * 50]
    expected = in_process.run(texts, batch_size=3)
    check(texts, expected)
    assert same(exported.run(texts, batch_size=5), expected)
    assert same(Predictor.from_dir(export_dir / "1").run(texts), expected)


def test_results_keep_input_order_whatever_the_batching(in_process):
    texts = ["北京", "", "我是李小四", "王五", "张三" * 30]
    one_by_one = [in_process.run([t])[0] for t in texts]
    done = []
    assert same(in_process.run(texts, batch_size=2, progress=done.append), one_by_one)
    assert done == [2, 4, 5]


def test_ten_thousand_characters(in_process, exported):
    text = ("的张三😀在ａ北京\x00 " * 1_000)[:10_000]
    (prediction,) = in_process.run([text])
    check([text], [prediction])
    assert sum(e.text == "张三" for e in prediction.entities) == 1_000
    assert same(exported.run([text]), [prediction])


def test_a_string_not_a_list_is_refused(in_process):
    with pytest.raises(TypeError):
        in_process.predict("张三")


TEXTS = st.lists(
    st.text(
        st.one_of(
            st.characters(),  # any code point but surrogates
            st.characters(categories=["Cs"]),
            st.sampled_from("张三李小四王五北京上海市杭州的是 \u3000ａ１😀\x00\n"),
        ),
        max_size=40,
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=40, deadline=None)
@given(texts=TEXTS)
def test_any_strings_python_api_and_saved_model(in_process, exported, texts):
    expected = in_process.run(texts)
    check(texts, expected)
    assert same(exported.run(texts), expected)


def test_invalid_utf8_bytes_reach_the_saved_model_as_replacement_characters(export_dir):
    loaded = tf.saved_model.load(str(export_dir / "1"))
    out = loaded.signatures["serving_default"](text=tf.constant([b"\xff\xfe\xe5\xbc\xa0\xe4\xb8\x89", b"\xe5\xbc"]))
    assert out["num_chars"].numpy().tolist()[0] == 4
    assert out["entity_text"][0, 0].numpy().decode() == "张三"


def test_from_dir_finds_the_latest_version(model_dir, export_dir, tmp_path):
    assert find_export(export_dir) == export_dir / "1"
    (tmp_path / "2").mkdir()  # no saved_model.pb: not a version
    (tmp_path / "10").mkdir()
    (tmp_path / "10" / "saved_model.pb").write_bytes(b"")
    (tmp_path / "9").mkdir()
    (tmp_path / "9" / "saved_model.pb").write_bytes(b"")
    assert find_export(tmp_path) == tmp_path / "10"
    assert find_export(model_dir) is None
    with pytest.raises(InputError, match="neither a model_dir"):
        Predictor.from_dir(tmp_path / "2")
    with pytest.raises(ValueError, match="window_stride"):
        Predictor.from_dir(export_dir, window_stride=3)


# Files.


@pytest.mark.slow
@pytest.mark.parametrize("source", ["model_dir", "export_dir"])
def test_the_python_api_prints_nothing_of_tensorflows_start_up(source, request):
    """`kner.Predictor` in a fresh process: importing TensorFlow, loading the
    model and the first call print about ten start-up notices
    (`failed call to cuInit`, `oneDNN supports DT_INT32 ...`), all hidden;
    `TF_CPP_MIN_LOG_LEVEL=0` shows them."""
    path = request.getfixturevalue(source)
    script = f"import kner\nprint(kner.Predictor.from_dir({str(path)!r}).predict(['张三在北京'])[0][0].text)"
    env = {k: v for k, v in child_env().items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=REPO)
    assert (result.returncode, result.stdout, result.stderr) == (0, "张三\n", "")
    env["TF_CPP_MIN_LOG_LEVEL"] = "0"
    shown = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=REPO)
    assert "oneDNN" in shown.stderr and shown.stdout == "张三\n"


# Pair heads (GlobalPointer): the export decodes each window inside the graph.


@pytest.fixture(scope="module", params=["global_pointer", "efficient_global_pointer"])
def pair_dirs(request, tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    model_dir = toy_dir(base, request.param)
    return model_dir, cached_export(base, f"toy_{request.param}_export", model_dir)


def test_pair_head_export_finds_what_the_python_api_finds(pair_dirs):
    """Nested entities, emoji, control characters, and a 10,000-character
    text through windows: the SavedModel answers as the in-process graph."""
    model_dir, export_dir = pair_dirs
    rng = random.Random(4)
    long = "".join(toy_nested_sentence(rng, 3).text for _ in range(1_200))[:10_000]
    texts = [*TRICKY, "在北京大学和上海市大学的张三", "😀\x01北京大学\t王五", long]
    expected = Predictor.from_dir(model_dir).run(texts, batch_size=4)
    got = Predictor.from_dir(export_dir).run(texts, batch_size=5)
    assert same(got, expected)
    assert all(p.tags is None for p in got)
    spans = {(e.type, e.start, e.end) for e in expected[-3].entities}
    assert {("loc", 1, 2), ("org", 1, 4), ("loc", 6, 8), ("org", 6, 10), ("name", 12, 13)} <= spans
    assert len(long) == 10_000 and len(expected[-1].entities) > 500
    for text, prediction in zip(texts, got):
        assert all(text[e.start : e.end + 1] == e.text and 0 < e.score < 1 for e in prediction.entities)


# The span head: start and end logits merged over windows, decoded in the graph.


def test_span_head_export_finds_what_the_python_api_finds(tmp_path_factory):
    """The usual hard texts and a 10,000-character one through windows: the
    SavedModel answers as the in-process graph."""
    base = tmp_path_factory.getbasetemp()
    model_dir = toy_dir(base, "span")
    export_dir = cached_export(base, "toy_span_export", model_dir)
    rng = random.Random(4)
    long = "".join(toy_nested_sentence(rng, 3).text for _ in range(1_200))[:10_000]
    texts = [*TRICKY, "张三在北京出差，李小四去了上海市", long]
    expected = Predictor.from_dir(model_dir).run(texts, batch_size=4)
    got = Predictor.from_dir(export_dir).run(texts, batch_size=5)
    assert same(got, expected)
    assert all(p.tags is None for p in got)
    spans = {(e.type, e.text) for e in expected[-2].entities}
    assert spans == {("name", "张三"), ("loc", "北京"), ("name", "李小四"), ("loc", "上海市")}
    assert len(long) == 10_000 and len(expected[-1].entities) > 500
    for text, prediction in zip(texts, got):
        assert all(text[e.start : e.end + 1] == e.text and 0 < e.score < 1 for e in prediction.entities)
