import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from shared_data import shared_file

import kner
from kner.corpus import Sentence
from kner.errors import InputError
from kner.predict import Entity, Predictor, evaluate_predictions, find_export, read_texts, write_predictions
from kner.spans import Span

ROOT = Path(__file__).resolve().parents[1]
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
def in_process(model_dir):
    return Predictor.from_dir(model_dir)


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


def test_read_texts_detects_cluener_and_plain_text(tmp_path):
    labelled = tmp_path / "dev.json"
    labelled.write_text('{"text": "张三在北京", "label": {"name": {"张三": [[0, 1]]}}}\n', encoding="utf-8")
    (sentence,) = read_texts(labelled)
    assert sentence.spans == [Span(0, 1, "name")]
    unlabelled = tmp_path / "test.json"
    unlabelled.write_text('{"id": 0, "text": "王五"}\n{"id": 1, "text": ""}\n', encoding="utf-8")
    assert [(s.id, s.text, s.spans) for s in read_texts(unlabelled)] == [(0, "王五", None), (1, "", None)]
    plain = tmp_path / "texts.txt"
    plain.write_bytes("{not json\r\n\r\n张三 在\n".encode())
    assert [s.text for s in read_texts(plain)] == ["{not json", "", "张三 在"]
    assert [s.text for s in read_texts(labelled, "text")] == [labelled.read_text(encoding="utf-8").strip()]


@pytest.mark.parametrize(("content", "message"), [(b"", "empty"), (b"\xff\xfe", "UTF-8")])
def test_read_texts_errors(tmp_path, content, message):
    path = tmp_path / "in.txt"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        read_texts(path)
    with pytest.raises(InputError, match="no such file"):
        read_texts(tmp_path / "missing.txt")


def test_write_predictions_in_each_format(tmp_path):
    sentences = [Sentence("张三在北京", None, id=7), Sentence("无", None)]
    predictions = [[Entity("name", 0, 1, "张三", 0.91234), Entity("loc", 3, 4, "北京", 0.8)], []]

    def lines(fmt):
        write_predictions(tmp_path / fmt, sentences, predictions, fmt)
        return [json.loads(line) for line in (tmp_path / fmt).read_text(encoding="utf-8").splitlines()]

    assert lines("cluener") == [
        {"id": 7, "text": "张三在北京", "label": {"name": {"张三": [[0, 1]]}, "loc": {"北京": [[3, 4]]}}},
        {"text": "无", "label": {}},
    ]
    assert lines("submission") == [
        {"id": 7, "label": {"name": {"张三": [[0, 1]]}, "loc": {"北京": [[3, 4]]}}},
        {"id": 1, "label": {}},
    ]
    first = lines("jsonl")[0]
    assert first["entities"][0] == {"type": "name", "start": 0, "end": 1, "text": "张三", "score": 0.9123}
    assert lines("jsonl")[1] == {"text": "无", "entities": []}


def test_evaluate_only_labelled_input(in_process):
    sentences = [
        Sentence("张三在北京", [Span(0, 1, "name"), Span(3, 4, "loc")]),
        Sentence("的王五", [Span(1, 2, "name")]),
    ]
    report = evaluate_predictions(sentences, in_process.predict([s.text for s in sentences]))
    assert report["micro"]["f1"] == 1.0
    assert evaluate_predictions([Sentence("张三", None)], [[]]) is None


# The command line.


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "kner.predict", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300
    )


@pytest.mark.slow
def test_cli_with_labelled_input_prints_the_evaluation(model_dir, tmp_path):
    source = tmp_path / "dev.json"
    source.write_text(
        '{"text": "张三在北京", "label": {"name": {"张三": [[0, 1]]}, "loc": {"北京": [[3, 4]]}}}\n', encoding="utf-8"
    )
    result = run_cli(f"--model_dir={model_dir}", f"--input={source}", f"--output={tmp_path / 'out.json'}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "micro" in result.stdout and "1.0000" in result.stdout
    (record,) = [json.loads(line) for line in (tmp_path / "out.json").read_text(encoding="utf-8").splitlines()]
    assert record["label"] == {"name": {"张三": [[0, 1]]}, "loc": {"北京": [[3, 4]]}}


@pytest.mark.slow
def test_cli_writes_a_submission_for_cluener_test_json(export_dir, tmp_path):
    test_json = shared_file("cluener/test.json")
    head = tmp_path / "test.json"
    head.write_text("".join(test_json.read_text(encoding="utf-8").splitlines(keepends=True)[:40]), encoding="utf-8")
    output = tmp_path / "submission.json"
    result = run_cli(
        f"--export_dir={export_dir}", f"--input={head}", f"--output={output}", "--output_format=submission"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    inputs = [json.loads(line) for line in head.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in records] == [r["id"] for r in inputs]
    assert all(set(r) == {"id", "label"} for r in records)


@pytest.mark.slow
def test_cli_reports_bad_input_in_one_line(export_dir, tmp_path):
    result = run_cli(f"--export_dir={export_dir}", f"--input={tmp_path / 'missing.txt'}", f"--output={tmp_path / 'o'}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "Traceback" not in result.stderr
