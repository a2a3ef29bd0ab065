"""The docs cannot rot. Every command block of README.md and docs/*.md is
marked runnable or not (and says why); the runnable ones run, in order, as a
user would run them (slow); and no tracked file names a development machine's
folders.

Markers, on the line above a fenced `sh` or `python` block (BUILD.md, "The
docs are tested"):

    <!-- runnable -->
    <!-- runnable; test adds: --train_steps=4 -->     appended to each `python -m kner.X`
    <!-- not runnable: REASON -->

The runnable blocks run in a copy of the checkout whose `.venv` is the
environment running pytest and whose `../shared/data` is `MINIATURE`, a small
stand-in for the real data with the same file names and formats, built from
`data/demo` and `data/pretrain_demo`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import docs_outcomes
import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND_LANGUAGES = {"sh", "bash", "shell", "console", "python", "py"}
MARKER = re.compile(
    r"^<!-- (?:(?P<runnable>runnable)(?:; test adds: (?P<adds>[^>]*?))?|not runnable: (?P<why>.+?)) -->$"
)
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<language>[\w+-]*)\s*$")
# Absolute paths into a development machine's folders: a home, a work tree, a scratch directory.
MACHINE_PATH = re.compile(r"(?<![\w.~-])/(?:work|home|root|Users|tmp|mnt/data)/")


@dataclass
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    language: str
    text: str
    marker: re.Match | None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def runnable(self) -> bool:
        return self.marker is not None and self.marker["runnable"] is not None


def read_blocks(page: Path) -> list[Block]:
    """The fenced blocks of a Markdown page, each with the marker on the line above it."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), None)
        assert end is not None, f"{page}:{i + 1}: a fence that never closes"
        indent = len(opening["indent"])
        body = "\n".join(line[indent:] for line in lines[i + 1 : end])
        above = lines[i - 1].strip() if i else ""
        blocks.append(Block(page, i + 1, opening["language"], body, MARKER.match(above)))
        i = end + 1
    return blocks


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


# ---- every block is marked ---------------------------------------------------


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_command_block_is_marked(page):
    for block in read_blocks(page):
        assert block.language, f"{block.where}: give the fence a language (sh, python, text, json)"
        if block.language in COMMAND_LANGUAGES:
            assert block.marker, (
                f"{block.where}: put <!-- runnable --> or <!-- not runnable: REASON --> on the line above "
                "this block (BUILD.md, 'The docs are tested')"
            )


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_marker_stands_above_a_command_block(page):
    lines = page.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if "runnable" in line and line.strip().startswith("<!--"):
            assert MARKER.match(line.strip()), f"{page_id(page)}:{number}: not a marker BUILD.md describes: {line}"
            following = FENCE.match(lines[number]) if number < len(lines) else None
            assert following and following["language"] in COMMAND_LANGUAGES, (
                f"{page_id(page)}:{number}: a marker must stand right above a sh or python block"
            )


def test_the_check_finds_an_unmarked_block(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("Text.\n\n```sh\nls\n```\n\n<!-- not runnable: a server -->\n```sh\ncurl x\n```\n")
    first, second = read_blocks(page)
    assert (first.language, first.marker, first.text) == ("sh", None, "ls")
    assert second.marker["why"] == "a server" and not second.runnable


# ---- no machine paths --------------------------------------------------------


def tracked_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout: no list of tracked files")
    return [ROOT / name for name in listed.stdout.decode().split("\0") if name]


def test_no_tracked_file_names_a_machine_path():
    found = []
    for path in tracked_files():
        if path == Path(__file__).resolve() or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # images
        for number, line in enumerate(text.splitlines(), 1):
            if MACHINE_PATH.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:120]}")
    assert not found, "machine paths (write ../shared/data/..., runs/..., or use tmp_path):\n" + "\n".join(found)


def test_the_path_check_catches_machine_paths_and_passes_others():
    for bad in ["--dev_file=/work/shared/data/dev.txt", "see /home/ann/kner", '"/tmp/kner_before"', "/root/.cache/x"]:
        assert MACHINE_PATH.search(bad), bad
    for good in ["--export_dir=/models/kner", "../shared/data/cluener", "https://example.com/home/x", "runs/tmp/x"]:
        assert not MACHINE_PATH.search(good), good


# ---- the runnable blocks run -------------------------------------------------


def _cluener_test(data: Path) -> None:
    lines = (ROOT / "data" / "demo" / "dev.json").read_text(encoding="utf-8").splitlines()
    texts = [json.loads(line)["text"] for line in lines]
    rows = [json.dumps({"id": i, "text": text}, ensure_ascii=False) for i, text in enumerate(texts)]
    (data / "cluener" / "test.json").write_text("\n".join(rows) + "\n", encoding="utf-8")


def _column(split: str) -> Callable[[Path], None]:
    def build(data: Path) -> None:
        from kner.data.corpus import read_corpus, write_column

        sentences = read_corpus(ROOT / "data" / "demo" / f"{split}.json")
        write_column(data / "peoples_daily" / f"{split}.txt", sentences, "bio")

    return build


def _vocab(data: Path) -> None:
    from kner.data.tokenizer import build_vocab, save_vocab

    texts = [p.read_text(encoding="utf-8") for p in (ROOT / "data").rglob("*") if p.is_file()]
    save_vocab(build_vocab(texts), data / "vocab" / "bert-base-chinese-vocab.txt")


# WNUT-17's layout (word<TAB>tag, BIO; train marks a sentence break with a lone tab), English text.
CONLL_SENTENCES = [
    [("Empire", "B-location"), ("State", "I-location"), ("Building", "I-location"), ("=", "O"), ("ESB", "B-location")],
    [("I", "O"), ("met", "O"), ("Alice", "B-person"), ("at", "O"), ("Google", "B-corporation"), (".", "O")],
    [("Reading", "O"), ("Dune", "B-creative-work"), ("again", "O"), ("with", "O"), ("the", "O"), ("club", "O")],
]


def _conll(split: str) -> Callable[[Path], None]:
    def build(data: Path) -> None:
        breaks = "\t\n" if split == "train" else "\n"
        text = breaks.join("".join(f"{word}\t{tag}\n" for word, tag in s) for s in CONLL_SENTENCES * 4)
        (data / "wnut17" / f"{split}.conll").write_text(text, encoding="utf-8")

    return build


def _english_vocab(data: Path) -> None:
    """A WordPiece vocab in the layout of Google's English cased one: the
    special tokens, the miniature's words, and every ASCII letter, digit and
    symbol alone and as a `##` continuation (so any ASCII word splits)."""
    from kner.data.tokenizer import save_vocab

    specials = ["[PAD]", *(f"[unused{i}]" for i in range(1, 5)), "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = sorted({word for sentence in CONLL_SENTENCES for word, _ in sentence})
    ascii_chars = [chr(c) for c in range(33, 127)]
    tokens = [*specials, *words, *ascii_chars, *(f"##{c}" for c in ascii_chars)]
    save_vocab(list(dict.fromkeys(tokens)), data / "vocab" / "bert-base-cased-vocab.txt")


def _labelled_lines(data: Path) -> None:
    lines = (ROOT / "data" / "pretrain_demo" / "corpus.txt").read_text(encoding="utf-8").splitlines()
    (data / "corpus" / "book_review.txt").write_text("".join(f"1\t{line}\n" for line in lines), encoding="utf-8")


# What the docs and flagfiles read from ../shared/data, in miniature: a path
# under it -> the function that writes it (given the miniature's root), or the
# repository file it is a copy of.
MINIATURE: dict[str, str | Callable[[Path], None]] = {
    "cluener/train.json": "data/demo/train.json",
    "cluener/dev.json": "data/demo/dev.json",
    "cluener/test.json": _cluener_test,
    "peoples_daily/train.txt": _column("train"),
    "peoples_daily/dev.txt": _column("dev"),
    "vocab/bert-base-chinese-vocab.txt": _vocab,
    "vocab/bert-base-cased-vocab.txt": _english_vocab,
    "corpus/clue_corpus_small_sample.txt": "data/pretrain_demo/corpus.txt",
    "corpus/chnsenticorp.txt": "data/pretrain_demo/corpus.txt",
    "corpus/book_review.txt": _labelled_lines,
    "wnut17/train.conll": _conll("train"),
    "wnut17/dev.conll": _conll("dev"),
    "wnut17/test.conll": _conll("test"),
}


def build_miniature(data: Path) -> None:
    for relative, source in MINIATURE.items():
        (data / relative).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(source, str):
            shutil.copyfile(ROOT / source, data / relative)
        else:
            source(data)
        assert (data / relative).exists(), f"MINIATURE[{relative!r}] wrote nothing"


# The documented differences from a user's machine (BUILD.md, "The docs are tested").
SUBSTITUTIONS = [
    # The environment exists: .venv is the one running the tests.
    (re.compile(r"python3 -m venv \.venv && \.venv/bin/pip install -r [\w.-]+ && "), ""),
    # A summary of the logs instead of a server that runs until Ctrl-C.
    (re.compile(r"\btensorboard --logdir\b"), "tensorboard --inspect --logdir"),
]
KNER_COMMAND = re.compile(r"\bpython -m kner\.\w+")
TRAILING_COMMENT = re.compile(r"(\s+#\s.*)?$")


def add_flags(text: str, flags: str) -> str:
    """Appends `flags` to each `python -m kner.X` command of a shell block (at
    the end of its last continued line, before a trailing comment)."""
    lines, out, command = text.splitlines(), [], False
    for line in lines:
        command = command or bool(KNER_COMMAND.search(line))
        if command and not line.rstrip().endswith("\\"):
            line = TRAILING_COMMENT.sub(lambda m: f" {flags}{m.group(1) or ''}", line.rstrip(), count=1)
            command = False
        out.append(line)
    return "\n".join(out)


def commands(text: str) -> list[str]:
    """The `python -m kner.X` commands of a shell block, each as one line
    (continuations joined, `&&` chains split, a `.venv/bin/` prefix and a
    trailing comment dropped, runs of spaces as one)."""
    found = []
    for line in text.replace("\\\n", " ").splitlines():
        for part in line.split("&&"):
            part = " ".join(TRAILING_COMMENT.sub("", part).split()).removeprefix(".venv/bin/")
            if KNER_COMMAND.match(part):
                found.append(part)
    return found


def skip_ran(text: str, ran: dict[str, str]) -> str:
    """Replaces each line of a shell block that is one `python -m kner.X`
    command (continuations included) which already ran, word for word, on an
    earlier page of the same workspace (`ran`: command -> page) by a note:
    the same command in the same workspace proves nothing new, and each costs
    a TensorFlow start, tracing and an export."""
    out, pending = [], []
    for line in text.splitlines():
        pending.append(line)
        if line.rstrip().endswith("\\"):
            continue
        logical = "\n".join(pending)
        found = commands(logical)
        if len(found) == 1 and found[0] in ran and "&&" not in logical and ";" not in TRAILING_COMMENT.sub("", logical):
            out.append(f"echo '### ran on {ran[found[0]]} already: {found[0][:60]}' >&2")
        else:
            out.extend(pending)
        pending = []
    return "\n".join(out + pending)


def as_run(block: Block) -> str:
    """A runnable block's text as the test runs it: `SUBSTITUTIONS` applied and
    the marker's added flags appended."""
    text = block.text
    for pattern, replacement in SUBSTITUTIONS:
        text = pattern.sub(replacement, text)
    return add_flags(text, block.marker["adds"]) if block.marker["adds"] else text


def script(page: Path, ran: dict[str, str] | None = None) -> str:
    """The page's runnable blocks as one bash script, each announced on
    stderr; the commands in `ran` (see `skip_ran`) are not run again."""
    parts = ["set -euo pipefail"]
    if page.parent.name == "docs":
        parts.append("source .venv/bin/activate  # docs/README.md: commands run with the environment active")
    for block in read_blocks(page):
        if not block.runnable:
            continue
        text = as_run(block)
        parts.append(f"echo '### {block.where}' >&2")
        if block.language in ("python", "py"):
            text = f"python - <<'KNER_DOCS_PYTHON'\n{text}\nKNER_DOCS_PYTHON"
        else:
            text = skip_ran(text, ran or {})
        parts.append(text)
    return "\n".join(parts) + "\n"


def ran_commands(page: Path) -> dict[str, str]:
    """The kner commands of the page's runnable shell blocks, as the test runs them -> the page."""
    ran = {}
    for block in read_blocks(page):
        if block.runnable and block.language not in ("python", "py"):
            ran.update(dict.fromkeys(commands(as_run(block)), page_id(page)))
    return ran


def test_a_command_that_ran_on_an_earlier_page_is_not_run_again():
    readme = ".venv/bin/python -m kner.train --flagfile=flags/demo.cfg && .venv/bin/python -m kner.predict --x=1\n"
    ran = dict.fromkeys(commands(readme), "README.md")
    assert list(ran) == ["python -m kner.train --flagfile=flags/demo.cfg", "python -m kner.predict --x=1"]
    page = "python -m kner.train  --flagfile=flags/demo.cfg   # the teacher\n"
    page += "python -m kner.train \\\n    --flagfile=x\nls\n"
    assert skip_ran(page, ran) == (
        "echo '### ran on README.md already: python -m kner.train --flagfile=flags/demo.cfg' >&2\n"
        "python -m kner.train \\\n    --flagfile=x\nls"
    )
    assert skip_ran("python -m kner.predict --x=1 && ls", ran) == "python -m kner.predict --x=1 && ls"


def test_add_flags_appends_to_each_kner_command():
    block = "python -m kner.a --x=1   # note\nls\npython -m kner.b \\\n    --y=2\n"
    expected = "python -m kner.a --x=1 --z=3   # note\nls\npython -m kner.b \\\n    --y=2 --z=3"
    assert add_flags(block, "--z=3") == expected


def test_the_set_up_prefix_and_tensorboard_are_substituted():
    text = ".venv/bin/python -m kner.train x && tensorboard --logdir runs/x"
    command = "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt && " + text
    for pattern, replacement in SUBSTITUTIONS:
        command = pattern.sub(replacement, command)
    assert command == ".venv/bin/python -m kner.train x && tensorboard --inspect --logdir runs/x"


@pytest.fixture(scope="module")
def workspaces(tmp_path_factory) -> Callable[[str], Path]:
    """Workspace name -> a copy of the checkout beside a miniature
    ../shared/data, with the test's environment as its .venv; made on first use."""
    if not (Path(sys.prefix) / "bin" / "activate").exists():
        pytest.skip("the docs' commands need a virtual environment (.venv); pytest is not running in one")
    made: dict[str, Path] = {}

    def workspace(name: str) -> Path:
        if name not in made:
            root = tmp_path_factory.mktemp("docs")
            checkout = root / "kner"
            ignore = shutil.ignore_patterns(".*", "runs", "build", "*.egg-info", "__pycache__", "run_export")
            shutil.copytree(ROOT, checkout, ignore=ignore)
            (checkout / ".venv").symlink_to(sys.prefix, target_is_directory=True)
            build_miniature(root / "shared" / "data")
            made[name] = checkout
        return made[name]

    return workspace


# Pages that use nothing another page made run in a workspace of their own, as
# the methods of one class: under `--dist loadscope` a class is a unit of work
# apart from its module, so they run on another worker beside the rest, which
# run in order in one workspace (README.md first: they use its demo model, and
# fine-tuning.md the runs/pretrain_demo of distillation.md).
SELF_CONTAINED = {"docs/data.md", "docs/english.md", "docs/heads.md"}

# Per workspace, the kner commands that ran there (command -> page), so that a
# later page does not run them again (`skip_ran`).
RAN: dict[Path, dict[str, str]] = {}
RUNNABLE_PAGES = [page for page in PAGES if any(block.runnable for block in read_blocks(page))]


def run_page(page: Path, workspace: Path) -> None:
    """Runs the page's runnable blocks in the workspace, then the checks of
    what they made (tests/docs_outcomes.py)."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    earlier = RAN.setdefault(workspace, {})
    ran = subprocess.run(
        ["bash", "-c", script(page, earlier)], cwd=workspace, env=env, capture_output=True, text=True, timeout=45 * 60
    )
    announced = [line for line in ran.stderr.splitlines() if line.startswith("### ")]
    assert ran.returncode == 0, (
        f"{page_id(page)}: the block at {announced[-1][4:] if announced else '?'} failed "
        f"(exit {ran.returncode}):\n{ran.stdout[-3000:]}\n{ran.stderr[-5000:]}"
    )
    earlier.update({c: p for c, p in ran_commands(page).items() if c not in earlier})
    if page_id(page) in docs_outcomes.CHECKS:
        docs_outcomes.CHECKS[page_id(page)](workspace, ran.stdout)


@pytest.mark.slow
@pytest.mark.docs
@pytest.mark.parametrize("page", [p for p in RUNNABLE_PAGES if page_id(p) not in SELF_CONTAINED], ids=page_id)
def test_runnable_blocks(page, workspaces):
    run_page(page, workspaces("shared"))


@pytest.mark.slow
@pytest.mark.docs
class TestSelfContainedPages:
    @pytest.mark.parametrize("page", [p for p in RUNNABLE_PAGES if page_id(p) in SELF_CONTAINED], ids=page_id)
    def test_runnable_blocks(self, page, workspaces):
        run_page(page, workspaces(page_id(page)))
