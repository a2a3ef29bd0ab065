"""Reading error report pages in tests: a small DOM (HTML text parsed into
elements with `find_all` and `text`, by the standard library's parser), the
numbers of the scores table, and predictions with every kind of error."""

from __future__ import annotations

import dataclasses
import random
from html.parser import HTMLParser

from kner.data.corpus import Sentence
from kner.data.spans import Span

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclasses.dataclass
class Element:
    tag: str
    attrs: dict[str, str | None]
    children: list[Element | str] = dataclasses.field(default_factory=list)
    parent: Element | None = dataclasses.field(default=None, repr=False)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self):
        yield self
        for child in self.children:
            if isinstance(child, Element):
                yield from child.iter()

    def find_all(self, tag: str | None = None, **attrs: str) -> list[Element]:
        """Descendants (self included) with `tag` and every attribute in
        `attrs` (`data_kind="missed"` matches `data-kind`; value True: present)."""
        wanted = {name.replace("_", "-"): value for name, value in attrs.items()}
        return [
            e
            for e in self.iter()
            if (tag is None or e.tag == tag)
            and all(name in e.attrs and (value is True or e.attrs[name] == value) for name, value in wanted.items())
        ]

    def find(self, tag: str | None = None, **attrs: str) -> Element:
        (found,) = self.find_all(tag, **attrs)
        return found

    def ancestors(self):
        node = self.parent
        while node is not None:
            yield node
            node = node.parent


class _Builder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.current = self.root

    def handle_starttag(self, tag, attrs):
        element = Element(tag, dict(attrs), parent=self.current)
        self.current.children.append(element)
        if tag not in VOID:
            self.current = element

    def handle_endtag(self, tag):
        node = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data):
        self.current.children.append(data)


def parse(html: str) -> Element:
    builder = _Builder()
    builder.feed(html)
    builder.close()
    return builder.root


def perturbed(sentences: list[Sentence], seed: int) -> list[list[Span]]:
    """Predictions with every kind of error: dropped, retyped, stretched, invented."""
    rng, types = random.Random(seed), sorted({s.type for sentence in sentences for s in sentence.spans})
    predicted = []
    for sentence in sentences:
        spans = []
        for span in sentence.spans:
            roll = rng.random()
            if roll < 0.15:
                continue
            if roll < 0.3:
                span = span._replace(type=rng.choice(types))
            elif roll < 0.45:
                span = span._replace(end=min(span.end + 1, len(sentence.text) - 1))
            spans.append(span)
        if rng.random() < 0.3:
            start = rng.randrange(len(sentence.text))
            spans.append(Span(start, start, rng.choice(types)))
        predicted.append(spans)
    return predicted


def scores_in_page(html: str) -> dict:
    """The numbers of the page's scores table: {row: {metric: value}} (exact
    values from `data-value`, counts as ints), and the notes under it."""
    page = parse(html)
    table = {}
    for row in page.find_all("tr", data_scores=True):
        cells = row.find_all("td", data_metric=True)
        table[row.attrs["data-scores"]] = {
            c.attrs["data-metric"]: float(c.attrs["data-value"]) if "data-value" in c.attrs else int(c.text())
            for c in cells
        }
    notes = {b.attrs["data-metric"]: float(b.attrs["data-value"]) for b in page.find_all("b", data_metric=True)}
    return {"table": table, "notes": notes}


def assert_scores_equal(html: str, expected: dict) -> None:
    found = scores_in_page(html)
    assert set(found["table"]) == {*expected["per_type"], "micro"}
    for name, values in [*expected["per_type"].items(), ("micro", expected["micro"])]:
        row = found["table"][name]
        assert {m: row[m] for m in ("precision", "recall", "f1", "support")} == values, name
    assert found["notes"]["type_macro_f1"] == expected["type_macro_f1"]
    if "cluener_score_f1" in expected:
        assert found["notes"]["cluener_score_f1"] == expected["cluener_score_f1"]
