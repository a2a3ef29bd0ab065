"""`python -m kner.report`: gold and predictions files in, the HTML report out."""

import json
import re
import sys
from pathlib import Path

import pytest
from report_pages import assert_scores_equal, perturbed
from train_runs import run_child

from kner.data.corpus import Sentence, read_corpus, write_column
from kner.data.spans import Span
from kner.metrics import evaluate
from kner.predict import Entity, write_predictions

REPO = Path(__file__).resolve().parents[1]
GOLD = REPO / "data/demo/dev.json"


def run_cli(*args: str):
    return run_child(sys.executable, "-m", "kner.report", *args)


def write_prediction_file(path: Path, gold: list[Sentence], predicted, output_format: str) -> None:
    """`predicted` as `kner.predict` writes it in `output_format` (or a column file)."""
    if output_format == "column":
        write_column(path, [Sentence(s.text, spans) for s, spans in zip(gold, predicted)], "bioes")
        return
    entities = [
        [Entity(s.type, s.start, s.end, g.text[s.start : s.end + 1], 0.9) for s in p] for g, p in zip(gold, predicted)
    ]
    write_predictions(path, [Sentence(s.text, None, s.id) for s in gold], entities, output_format)


@pytest.mark.parametrize(
    ("output_format", "joined"), [("jsonl", "by position"), ("submission", "by id"), ("column", "by position")]
)
def test_the_reports_numbers_are_the_scorers_on_the_same_files(tmp_path, output_format, joined):
    gold = read_corpus(GOLD)
    predicted = perturbed(gold, seed=11)
    if output_format == "column":  # flat tags: no nested predictions
        predicted = [
            [s for s in spans if not any(o != s and o.start <= s.start and s.end <= o.end for o in spans)]
            for spans in predicted
        ]
        predicted = [sorted(set(spans)) for spans in predicted]
    path = tmp_path / f"predictions.{output_format}"
    write_prediction_file(path, gold, predicted, output_format)
    done = run_cli(f"--gold={GOLD}", f"--predictions={path}", f"--output={tmp_path / 'report.html'}")
    assert done.returncode == 0, done.stderr
    assert f"(joined {joined})" in done.stdout and "error report  " in done.stdout
    expected = evaluate([s.text for s in gold], [s.spans for s in gold], predicted)
    assert_scores_equal((tmp_path / "report.html").read_text(encoding="utf-8"), expected)
    assert f"{expected['micro']['f1']:.4f}" in done.stdout  # the printed table too


def test_column_gold_and_cluener_predictions(tmp_path):
    write_column(tmp_path / "gold.bio", [Sentence("张三在北京", [Span(0, 1, "name")]), Sentence("李四", [])], "bio")
    (tmp_path / "p.json").write_text(
        '{"text": "张三在北京", "label": {"name": {"张三": [[0, 1]]}, "loc": {"北京": [[3, 4]]}}}\n'
        '{"text": "李四", "label": {}}\n',
        encoding="utf-8",
    )
    done = run_cli(
        f"--gold={tmp_path / 'gold.bio'}",
        "--input_format=column",
        f"--predictions={tmp_path / 'p.json'}",
        f"--output={tmp_path / 'r.html'}",
    )
    assert done.returncode == 0, done.stderr
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    data = json.loads(html.split('id="report-data">')[1].split("</script>")[0])
    assert data["types"] == ["loc", "name"] and data["rows"][0][4] == [[0, 1, 1, 0], [3, 4, 0, 2]]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"p.json": '{"id": 0, "label": {}}\n{"id": 0, "label": {}}\n'}, r"p.json:2: id 0 repeats line 1"),
        (
            {"p.json": '{"text": "x", "entities": []}\n'},
            r"p.json:1: text 'x' differs from the gold text at .*dev.json:1",
        ),
        ({"p.json": ""}, r"p.json: file is empty"),
        ({}, r"p.json: no such file or directory"),
        (
            {"p.json": '{"id": 0, "label": {}}\n', "gold": '{"text": "无"}\n'},
            r"gold.json:1: no label: the gold data must be labelled",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_output(tmp_path, files, message):
    for name, content in files.items():
        (tmp_path / ("gold.json" if name == "gold" else name)).write_text(content, encoding="utf-8")
    gold = tmp_path / "gold.json" if "gold" in files else GOLD
    output = tmp_path / "report.html"
    done = run_cli(f"--gold={gold}", f"--predictions={tmp_path / 'p.json'}", f"--output={output}")
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and re.search(message, line), line
    assert not output.exists() and not list(tmp_path.glob(".report.html.*"))


def test_an_output_that_cannot_be_written(tmp_path):
    done = run_cli(f"--gold={GOLD}", f"--predictions={GOLD}", f"--output={tmp_path / 'missing' / 'r.html'}")
    assert done.returncode == 2 and "directory" in done.stderr and "does not exist" in done.stderr
    done = run_cli(f"--gold={GOLD}", f"--predictions={GOLD}")
    assert done.returncode == 2 and "--output is required" in done.stderr


def test_help_lists_the_flags():
    shown = run_cli("--help")
    assert shown.returncode == 0 and "Traceback" not in shown.stderr
    for flag in ("--gold", "--predictions", "--output", "--input_format", "--input_tag_scheme", "--lenient"):
        assert flag in shown.stdout, flag
