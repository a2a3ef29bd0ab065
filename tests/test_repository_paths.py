"""Paths the repository hands to users: every flagfile's relative paths
follow one convention, and every file the docs name exists.

The convention (paths are relative to the repository root, where the
commands run): data and checkpoints live beside the repository
(`../shared/data/...`, `../<checkpoint dir>`), outputs under `runs/`, and
anything else a flagfile names is a file of the repository itself
(`data/demo/train.json`, `flags/tiny_bert_config.json`). The docs check
reads README.md, BUILD.md, bench/README.md and docs/*.md, whatever their
layout: repository paths in their text and the targets of their Markdown
links.
"""

import re
from pathlib import Path

import pytest

from kner.cli import PATH_FLAGS

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
FLAGFILES = sorted((REPO / "flags").glob("*.cfg"))
# Flags whose values are paths (a list of them, for the *_files flags).
PATHS = PATH_FLAGS | {"teacher_dir", "corpus_files", "unlabeled_files", "flagfile"}
OUTPUTS = {"model_dir", "export_dir"}
DOCS = ["README.md", "BUILD.md", "bench/README.md", "docs/*.md"]
# A repository path in running text: a top-level folder of the repository,
# then a file name with an extension, or a folder (a trailing slash).
# Not after a flag that names what a command writes (`--json=bench/results/x.json`: a
# regenerating command's output, which need not exist before it runs).
REPO_PATH = re.compile(
    r"(?<![\w./~-])(?<!--json=)(?<!--plot=)(?<!--output=)"
    r"((?:kner|tests|bench|flags|data|tools|docs)/(?:[\w.*-]+/)*(?:[\w*-]+\.\w+|))"
)
SHARED_PATH = re.compile(r"\.\./shared/data/[\w./*-]*[\w*]")
MARKDOWN_LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")
# Files the docs name as history: they were, and are no more.
GONE = {"bench/inference_bf16.py"}  # merged into bench/inference.py (bench/README.md, "Serving: the bfloat16 export")


def flagfile_paths(path: Path) -> list[tuple[str, str]]:
    """(flag, path) of each path a flagfile gives, lists split and
    `format:` prefixes (`label_tab:../shared/...`) dropped."""
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.fullmatch(r"--(\w+)=(.+)", line.strip())
        if not match or (match.group(1) not in PATHS and "/" not in match.group(2)):
            continue
        for value in match.group(2).split(","):
            found.append((match.group(1), re.sub(r"^\w+:(?!/)", "", value)))
    return found


def exists(path: Path) -> bool:
    return any(path.parent.glob(path.name)) if "*" in path.name else path.exists()


@pytest.mark.parametrize("path", FLAGFILES, ids=lambda p: p.name)
def test_flagfile_paths_follow_the_convention(path):
    for flag, value in flagfile_paths(path):
        where = f"{path.name}: --{flag}={value}"
        assert not Path(value).is_absolute(), f"{where}: an absolute path (write ../ or runs/)"
        if flag in OUTPUTS:
            assert value.startswith("runs/"), f"{where}: outputs go under runs/"
        elif value.startswith("../shared/data/") and SHARED.is_dir():
            assert exists(REPO / value), f"{where}: not in ../shared/data"
        elif not value.startswith(("../", "runs/")):
            assert exists(REPO / value), (
                f"{where}: neither beside the repository (../), a run's output (runs/) nor a file of the repository"
            )


def test_the_convention_check_catches_a_checkpoint_inside_the_repository(tmp_path):
    flagfile = tmp_path / "x.cfg"
    flagfile.write_text("# next to this repository\n--init_checkpoint=chinese_roberta\n--corpus_files=a:domain/*.txt\n")
    assert flagfile_paths(flagfile) == [("init_checkpoint", "chinese_roberta"), ("corpus_files", "domain/*.txt")]
    assert not exists(REPO / "chinese_roberta") and not exists(REPO / "domain/*.txt")


def doc_paths(doc: Path) -> set[tuple[str, Path]]:
    """(as written, where it must be) of each path `doc` names."""
    text = doc.read_text(encoding="utf-8")
    named = {(m.group(1), REPO / m.group(1)) for m in REPO_PATH.finditer(text)}
    named |= {(m.group(0), REPO / m.group(0)) for m in SHARED_PATH.finditer(text)} if SHARED.is_dir() else set()
    links = (m.group(1) for m in MARKDOWN_LINK.finditer(text))
    named |= {(link, doc.parent / link) for link in links if not re.match(r"\w+:", link)}  # not http:, mailto:
    return named


@pytest.mark.parametrize(
    "doc", [p for pattern in DOCS for p in sorted(REPO.glob(pattern))], ids=lambda p: str(p.relative_to(REPO))
)
def test_files_the_docs_name_exist(doc):
    missing = sorted(written for written, path in doc_paths(doc) if written not in GONE and not exists(path))
    assert not missing, f"{doc.relative_to(REPO)} names files that do not exist: {missing}"


def test_the_docs_check_catches_a_moved_test(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text(
        "The same step (`tests/test_trainer.py`), see [the guide](docs/nowhere.md) and bench/decoding.py;\n"
        "python bench/decoding.py --json=bench/results/not_yet.json writes a new result.\n"
    )
    found = {written for written, path in doc_paths(doc) if not exists(path)}
    assert found == {"tests/test_trainer.py", "docs/nowhere.md"}
