"""The user docs are self-contained: every relative link and every file path they name exists in the repository,
and none of them sends readers to design notes that are not shipped (``CONTRACTS.md``, ``ARCHITECTURE.md``, a
numbered design issue)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
"""``[text](target)`` and ``![alt](target)``; group 1 is the target."""

CODE_PATH = re.compile(r"`((?:docs|src|tests|benchmarks)/[A-Za-z0-9_./-]*[A-Za-z0-9_])`")
"""A repository path written as inline code (``docs/serving.md``, ``tests/explain/test_explain.py``)."""

PRIVATE = re.compile(r"\bCONTRACTS\.md|\bARCHITECTURE\.md|shared/design|(?i:\bissue\s+#?\d+)")
"""References to the private design folder, which users never see (the docs pages ``contracts.md`` and
``architecture.md`` are lower case)."""


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def dead_links(path: Path, text: str) -> list[str]:
    """The relative link targets of ``text`` (a Markdown file at ``path``) that name no file or folder."""
    dead = []
    for match in LINK.finditer(text):
        target = match.group(1)
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or target.startswith("#"):
            continue  # http:, https:, mailto: ... and anchors within the page
        file_part = target.split("#", 1)[0].split("?", 1)[0]
        if not (path.parent / file_part).exists():
            dead.append(target)
    return dead


def dead_code_paths(text: str, root: Path = ROOT) -> list[str]:
    """Repository paths written as inline code that do not exist under ``root`` (wildcards and placeholders
    skipped)."""
    return [
        p
        for p in CODE_PATH.findall(text)
        if not any(c in p for c in "*<>{}") and "..." not in p and not (root / p).exists()
    ]


def private_references(text: str) -> list[str]:
    return [f"line {text.count(chr(10), 0, m.start()) + 1}: {m.group(0)!r}" for m in PRIVATE.finditer(text)]


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert dead_links(path, text) == [], f"{path.relative_to(ROOT)} links to files that do not exist"
    assert dead_code_paths(text) == [], f"{path.relative_to(ROOT)} names repository paths that do not exist"


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_references_to_unshipped_design_notes(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert private_references(text) == [], (
        f"{path.relative_to(ROOT)} points readers at design notes they cannot see; link docs/contracts.md, "
        "docs/architecture.md or another docs page instead"
    )


def test_checks_catch_what_they_guard_against(tmp_path: Path) -> None:
    """The checks above are able to fail: a dead link, a dead code path and a private reference are all found."""
    page = tmp_path / "page.md"
    (tmp_path / "there.md").write_text("x", encoding="utf-8")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "contracts.md").write_text("x", encoding="utf-8")
    text = (
        "[ok](there.md#part) [web](https://example.org) [anchor](#top) ![img](missing.png) [gone](gone.md)\n"
        "see `docs/no-such-page.md`, `docs/contracts.md`, `docs/*.md`; the pages architecture.md and contracts.md\n"
        "shapes as in CONTRACTS.md, design in ARCHITECTURE.md (point 4 of issue 4)\n"
    )
    assert dead_links(page, text) == ["missing.png", "gone.md"]
    assert dead_code_paths(text, tmp_path) == ["docs/no-such-page.md"]
    assert [r.split(": ", 1)[1] for r in private_references(text)] == [
        "'CONTRACTS.md'",
        "'ARCHITECTURE.md'",
        "'issue 4'",
    ]


def test_docs_index_lists_every_page() -> None:
    """``docs/README.md`` links every other page under ``docs/``."""
    index = ROOT / "docs" / "README.md"
    linked = {(index.parent / t.split("#", 1)[0]).resolve() for t in LINK.findall(index.read_text(encoding="utf-8"))}
    pages = {p.resolve() for p in (ROOT / "docs").rglob("*.md") if p != index}
    missing = sorted(str(p.relative_to(ROOT)) for p in pages - linked)
    assert missing == [], "docs/README.md does not list these pages"


BENCHMARK_CONFIGS = sorted((ROOT / "benchmarks" / "configs").glob("*.toml"))


@pytest.mark.parametrize("config", BENCHMARK_CONFIGS, ids=lambda p: p.stem)
def test_each_benchmark_config_is_valid_and_has_its_docs_section(config: Path) -> None:
    """`make bench-docs` runs every config of benchmarks/configs and writes the section named after it."""
    from attnrec.evaluation.benchmark import read_benchmark_config
    from attnrec.registry import create_model

    parsed = read_benchmark_config(config)
    assert parsed.name == config.stem, "the config's name is the docs section it writes"
    for entry in parsed.models:
        params = {k: v for k, v in entry.params.items() if k != "members"}
        create_model(entry.name, params)  # every hyperparameter is one the model accepts
    text = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    assert text.count(f"<!-- benchmark:{parsed.name} -->") == 1
    assert text.count(f"<!-- /benchmark:{parsed.name} -->") == 1
