"""The error report page: the scorer's numbers, escaping, and (in headless
Chromium) the entity marks its script draws and the URL-fragment filter."""

import json
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest
from report_pages import assert_scores_equal, parse, perturbed, scores_in_page

from kner.data.corpus import Sentence, read_corpus
from kner.data.spans import Span
from kner.error_kinds import KINDS, judge
from kner.error_report import render, script_json, write_report
from kner.metrics import evaluate

REPO = Path(__file__).resolve().parents[1]
HOSTILE_TYPE = "<i>t&\"'</i>"
HOSTILE_TEXT = "<script>alert(\"x\")</script> & 'q' \u2028 &amp; </script><!-- end"


def test_the_numbers_are_the_scorers():
    gold = read_corpus(REPO / "data/demo/dev.json")
    predicted = perturbed(gold, seed=5)
    html = render(gold, predicted)
    expected = evaluate([s.text for s in gold], [s.spans for s in gold], predicted)
    assert 0.3 < expected["micro"]["f1"] < 0.95  # every kind of error is there
    assert_scores_equal(html, expected)
    table = scores_in_page(html)["table"]
    # The counts under the scores agree with them.
    for name, row in table.items():
        assert row["correct"] + row["missed"] + row["wrong-type"] + row["wrong-span"] == row["support"], name
        if row["predicted"]:
            assert row["correct"] / row["predicted"] == row["precision"]


def test_given_scores_are_shown_with_seqeval():
    gold = [Sentence("张三", [Span(0, 1, "name")])]
    scores = {**evaluate(["张三"], [[Span(0, 1, "name")]], [[]]), "seqeval": {"f1-score": 0.25}}
    assert scores_in_page(render(gold, [[]], scores=scores))["notes"]["seqeval_f1"] == 0.25


def hostile_sentences() -> list[Sentence]:
    return [
        Sentence(HOSTILE_TEXT, [Span(8, 12, HOSTILE_TYPE)], id='"7"&<b>'),  # alert
        Sentence("张三在北京", [Span(0, 1, "name")]),
    ]


def test_text_and_types_are_escaped():
    html = render(hostile_sentences(), [[Span(0, 6, "name")], [Span(0, 1, HOSTILE_TYPE)]], title="<t>", subtitle="&")
    page = parse(html)
    assert len(page.find_all("script")) == 2  # the data and the code: nothing in a text opened one
    assert not page.find_all("i") and not page.find_all("t")
    assert all("data-metric" in b.attrs for b in page.find_all("b"))
    assert page.find("title").text() == "<t>"
    (data,) = page.find_all("script", id="report-data")
    raw = data.text()
    assert not set(raw) & set("<>&\u2028\u2029")
    decoded = json.loads(raw)
    assert HOSTILE_TYPE in decoded["types"]
    row = next(r for r in decoded["rows"] if r[2] == HOSTILE_TEXT)
    assert row[1] == '#1, id "7"&<b>'
    # In the tables the type is text, and its filter link is URL- and HTML-encoded.
    headers = [th.text() for th in page.find_all("th")]
    assert HOSTILE_TYPE in headers
    assert any(a.attrs["href"] == f"#type={quote(HOSTILE_TYPE, safe='')}" for a in page.find_all("a"))


def test_script_json_round_trips():
    value = {"t": HOSTILE_TEXT + "\u2029", "n": [1, "</SCRIPT>"]}
    assert json.loads(script_json(value)) == value
    assert "</" not in script_json(value).lower()


def test_bad_arguments():
    with pytest.raises(ValueError, match="gold spans"):
        render([Sentence("甲", None)], [[]])
    with pytest.raises(ValueError):
        render([Sentence("甲", [])], [])
    with pytest.raises(ValueError, match=r"predicted span \[0, 1\] is outside sentence 0 \(length 1\)"):
        render([Sentence("甲", [])], [[Span(0, 1, "x")]])


# ---- in a real browser ----------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium is not installed here (Debian: apt-get install chromium; .ci/run installs it "
    "where apt-get works)",
)
LONG_TEXT = "的" * 9000 + "北京" + "的" * 998


def browser_sentences() -> list[Sentence]:
    """Rows of every sort, then enough correct ones for two pages."""
    return [
        *hostile_sentences(),
        # CMeEE-style nesting and one extent under two types.
        Sentence("左肺上叶结节", [Span(0, 5, "dis"), Span(0, 3, "bod"), Span(0, 3, "sym")]),
        Sentence(LONG_TEXT, [Span(9000, 9001, "loc")]),
        *[Sentence(f"第{i}句王五", [Span(2 + len(str(i)), 3 + len(str(i)), "name")]) for i in range(60)],
    ]


def browser_predictions(sentences: list[Sentence]) -> list[list[Span]]:
    predicted = [
        [Span(0, 6, "name")],
        [Span(0, 1, HOSTILE_TYPE)],
        [Span(0, 5, "dis"), Span(1, 3, "bod"), Span(0, 2, "sym")],  # two crossing spans
        [Span(20, 21, "loc")],
    ]
    return predicted + [s.spans for s in sentences[len(predicted) :]]


def chromium(profile: Path, *arguments: str) -> str:
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        *arguments,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory):
    directory = tmp_path_factory.mktemp("browser")
    sentences = browser_sentences()
    write_report(directory / "report.html", sentences, browser_predictions(sentences), "browser test")
    return directory


def rendered(directory: Path, fragment: str = ""):
    """The page's DOM after its script ran (Chromium's --dump-dom)."""
    url = (directory / "report.html").as_uri() + fragment
    return parse(chromium(directory / "profile", "--dump-dom", url))


def shown_rows(page) -> dict[int, object]:
    return {int(row.attrs["data-index"]): row for row in page.find_all("article")}


@needs_chromium
def test_browser_draws_the_marks(browser_page):
    page = rendered(browser_page)
    rows = shown_rows(page)
    assert len(rows) == 50  # the first page of 64 sentences
    assert list(rows)[:5] == [2, 0, 1, 3, 4]  # the worst first
    sentences, predicted = browser_sentences(), browser_predictions(browser_sentences())
    for index, row in rows.items():
        judged = judge(sentences[index].spans, predicted[index])
        for side in ("gold", "predicted"):
            marks = row.find("div", **{"class": f"pane {side}"}).find_all("mark")
            expected = {(j.span.start, j.span.end, j.span.type, j.kind) for j in getattr(judged, side)}
            found = {
                (int(m.attrs["data-start"]), int(m.attrs["data-end"]), m.attrs["data-type"], m.attrs["data-kind"])
                for m in marks
            }
            assert found == expected, (index, side)
            for mark in marks:
                start, end = int(mark.attrs["data-start"]), int(mark.attrs["data-end"])
                assert mark.text() == sentences[index].text[start : end + 1]
    assert {m.attrs["data-kind"] for m in page.find_all("mark")} == set(KINDS)
    # Escaped: the hostile text is text, the hostile type a type.
    assert len(page.find_all("script")) == 2 and not page.find_all("i")
    hostile = rows[0].find("div", **{"class": "pane gold"})
    assert hostile.text() == "gold" + HOSTILE_TEXT
    assert hostile.find("mark").attrs["data-type"] == HOSTILE_TYPE
    # Nested: the inner entities are marks inside the outer one.
    gold = rows[2].find("div", **{"class": "pane gold"})
    inner = [m for m in gold.find_all("mark") if m.attrs["data-type"] in ("bod", "sym")]
    assert len(inner) == 2 and all(any(a.attrs.get("data-type") == "dis" for a in m.ancestors()) for m in inner)
    # Crossing predictions: a second line of the same text.
    lines = rows[2].find("div", **{"class": "pane predicted"}).find_all("div")
    assert [line.attrs["class"] for line in lines[1:]] == ["text", "text crossing"]
    # 10,000 characters: only the stretches around the entities until expanded.
    long = rows[3].find("div", **{"class": "pane gold"})
    assert len(long.text()) < 400 and "…" in long.text()
    assert long.find("mark").attrs["data-start"] == "9000"


@needs_chromium
@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        ("#kind=missed", {0, 3}),
        (f"#type={quote(HOSTILE_TYPE, safe='')}&kind=wrong-type", {1}),
        ("#type=name&kind=errors", {0, 1}),
        ("#type=name&kind=correct&page=2", set(range(54, 64))),
    ],
)
def test_the_url_fragment_filters_rows(browser_page, fragment, expected):
    assert set(shown_rows(rendered(browser_page, fragment))) == expected


@needs_chromium
def test_screenshot(browser_page):
    path = browser_page / "report.png"
    chromium(
        browser_page / "profile",
        "--hide-scrollbars",
        "--window-size=1200,900",
        f"--screenshot={path}",
        (browser_page / "report.html").as_uri(),
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
