import json
import re
import subprocess
import sys

import pytest
from shared_data import shared_file
from train_runs import REPO, child_env, run_child

from kner.data.corpus import Sentence
from kner.data.spans import Span
from kner.errors import InputError
from kner.predict import Entity, evaluate_predictions, read_texts, write_predictions
from kner.serving.saved_model import export_source


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
    cmeee = tmp_path / "cmeee.json"
    cmeee.write_text(
        '[\n {"text": "肺内", "entities": [{"start_idx": 0, "end_idx": 0, "type": "bod", "entity": "肺"}]}\n]'
    )
    assert [(s.text, s.spans) for s in read_texts(cmeee)] == [("肺内", [Span(0, 0, "bod")])]
    brackets = tmp_path / "brackets.txt"
    brackets.write_text("[不是JSON\n]\n", encoding="utf-8")
    assert [s.text for s in read_texts(brackets)] == ["[不是JSON", "]"]


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty"), (b"ok\n\xff\xfe", re.escape("in.txt:2: not valid UTF-8 at column 1 (byte 0xff)"))],
)
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
    write_predictions(tmp_path / "cmeee", sentences, predictions, "cmeee")
    assert json.loads((tmp_path / "cmeee").read_text(encoding="utf-8")) == [
        {
            "text": "张三在北京",
            "entities": [
                {"start_idx": 0, "end_idx": 1, "type": "name", "entity": "张三"},
                {"start_idx": 3, "end_idx": 4, "type": "loc", "entity": "北京"},
            ],
        },
        {"text": "无", "entities": []},
    ]


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
    return run_child(sys.executable, "-m", "kner.predict", *args)


@pytest.mark.slow
def test_cli_with_labelled_input_prints_the_evaluation(model_dir, tmp_path):
    source = tmp_path / "dev.json"
    source.write_text(
        '{"text": "张三在北京", "label": {"name": {"张三": [[0, 1]]}, "loc": {"北京": [[3, 4]]}}}\n', encoding="utf-8"
    )
    result = run_cli(f"--model_dir={model_dir}", f"--input={source}", f"--output={tmp_path / 'out.json'}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "micro" in result.stdout and "1.0000" in result.stdout
    assert f"wrote 1 prediction to {tmp_path / 'out.json'}" in result.stdout
    assert "\x1b[" not in result.stdout and "\b" not in result.stdout  # no terminal codes in a redirected output
    (record,) = [json.loads(line) for line in (tmp_path / "out.json").read_text(encoding="utf-8").splitlines()]
    assert record["label"] == {"name": {"张三": [[0, 1]]}, "loc": {"北京": [[3, 4]]}}


@pytest.mark.slow
def test_cli_writes_a_submission_for_cluener_test_json(export_dir, tmp_path):
    test_json = shared_file("cluener/test.json")
    head = tmp_path / "test.json"
    head.write_text("".join(test_json.read_text(encoding="utf-8").splitlines(keepends=True)[:40]), encoding="utf-8")
    output = tmp_path / "submission.json"
    flags = [f"--export_dir={export_dir}", f"--input={head}", f"--output={output}", "--output_format=submission"]
    command = [sys.executable, "-m", "kner.predict", *flags]  # TensorFlow's logging as a user has it
    env = {k: v for k, v in child_env().items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    assert (result.returncode, result.stderr) == (0, "")  # no start-up notice, no oneDNN DT_INT32 error line
    source = f"exported from {export_source(export_dir / '1')['model_dir']}"
    assert result.stdout.startswith(f"model         {export_dir / '1'}  ({source})\n"), result.stdout
    records = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    inputs = [json.loads(line) for line in head.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in records] == [r["id"] for r in inputs]
    assert all(set(r) == {"id", "label"} for r in records)


@pytest.mark.slow
def test_cli_reports_bad_input_in_one_line(export_dir, tmp_path):
    result = run_cli(f"--export_dir={export_dir}", f"--input={tmp_path / 'missing.txt'}", f"--output={tmp_path / 'o'}")
    assert result.returncode == 2
    assert result.stderr == f"error: {tmp_path / 'missing.txt'}: no such file or directory\n"  # start-up is quiet


SURROGATE_LINE = r'{"text": "\ud83d\u738b\u5c0f\u4e8c", "label": {"name": {"\u738b\u5c0f\u4e8c": [[1, 3]]}}}' + "\n"


def test_read_texts_checks_utf8_in_each_format(tmp_path):
    plain = tmp_path / "in.txt"
    plain.write_bytes("张三\n".encode() + b"\xe5\xbc\xa0\xe4\xb8 \n")
    assert [s.text for s in read_texts(plain, lenient=True)] == ["张三", "张\ufffd "]
    cluener = tmp_path / "in.json"
    cluener.write_text(SURROGATE_LINE, encoding="utf-8")
    with pytest.raises(InputError, match=r"in.json:1: text character 0 is a lone surrogate U\+D83D"):
        read_texts(cluener)
    (sentence,) = read_texts(cluener, lenient=True)
    assert sentence.text == "\ufffd王小二" and sentence.spans == [Span(1, 3, "name")]


@pytest.mark.parametrize("fmt", ["cluener", "jsonl"])
def test_write_predictions_is_whole_or_nothing(tmp_path, fmt):
    """A text the writer cannot encode (from the Python API) after good
    ones: no output file at all, not an empty or half-written one."""
    sentences = [Sentence("张三", None)] * 3 + [Sentence("\ud83d", None)]
    with pytest.raises(UnicodeEncodeError):
        write_predictions(tmp_path / "out", sentences, [[]] * 4, fmt)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_cli_bad_text_fails_before_the_model_and_writes_nothing(export_dir, tmp_path):
    """Issue 11: a broken \\u escape is one line, exit 2, no output file; an
    unwritable output is found before the model runs; --lenient predicts."""
    source = tmp_path / "bad.json"
    source.write_text(SURROGATE_LINE, encoding="utf-8")
    output = tmp_path / "out.json"
    result = run_cli(f"--export_dir={export_dir}", f"--input={source}", f"--output={output}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {source}:1: text character 0 is a lone surrogate")
    assert not output.exists()
    result = run_cli(
        f"--export_dir={export_dir}", f"--input={source}", f"--output={tmp_path / 'no' / 'o'}", "--lenient"
    )
    assert result.returncode == 2
    assert "does not exist" in result.stderr.strip().splitlines()[-1]
    result = run_cli(f"--export_dir={export_dir}", f"--input={source}", f"--output={output}", "--lenient")
    assert result.returncode == 0, result.stderr
    (record,) = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert record["text"] == "\ufffd王小二"
