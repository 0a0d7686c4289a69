"""Every code block the docs mark ``<!-- file: PATH -->`` is a piece of that file, so what the
docs show is what the tests run (each of those files is run by a test of its own).

A block marked ``<!-- whole file: PATH -->`` is one part of a file a page shows whole: that
page's whole-file blocks of PATH, read in order, are the file, every line of it (blank lines
aside), comments included."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MARKED = re.compile(r"<!-- (whole )?file: (\S+) -->\n```[a-z]*\n(.*?)```", re.DOTALL)


def _docs() -> list[Path]:
    return [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]


def marked_blocks() -> list[tuple[str, str, str]]:
    found = []
    for doc in _docs():
        for _, path, block in MARKED.findall(doc.read_text()):
            found.append((str(doc.relative_to(ROOT)), path, block))
    return found


def whole_files() -> dict[tuple[str, str], list[str]]:
    """The blocks of each file a page shows whole, by (page, file), in the page's order."""
    found: dict[tuple[str, str], list[str]] = {}
    for doc in _docs():
        for whole, path, block in MARKED.findall(doc.read_text()):
            if whole:
                found.setdefault((str(doc.relative_to(ROOT)), path), []).append(block)
    return found


def without_comments(text: str) -> str:
    text = re.sub(r"[ \t]+#.*", "", text)
    return "\n".join(line.rstrip() for line in text.splitlines())


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize(("doc", "path", "block"), marked_blocks())
def test_a_marked_block_is_in_its_file(doc: str, path: str, block: str) -> None:
    source = without_comments((ROOT / path).read_text())
    for chunk in re.split(r"\n\s*\n", without_comments(block)):
        if chunk.strip():
            assert chunk.strip("\n") in source, f"{doc} shows code that {path} lacks:\n{chunk}"


@pytest.mark.parametrize(("doc", "path"), sorted(whole_files()))
def test_a_file_shown_whole_is_shown_whole_and_in_order(doc: str, path: str) -> None:
    shown = _lines("\n".join(whole_files()[doc, path]))
    actual = _lines((ROOT / path).read_text())
    for number, (seen, real) in enumerate(zip(shown, actual, strict=False), start=1):
        assert seen == real, (
            f"{doc} shows {path} otherwise at line {number}: {seen!r}, not {real!r}"
        )
    assert len(shown) == len(actual), (
        f"{doc} shows {len(shown)} non-blank lines of {path}, which has {len(actual)}; "
        f"{'missing' if len(shown) < len(actual) else 'extra'}: "
        f"{(actual if len(shown) < len(actual) else shown)[min(len(shown), len(actual))]!r}"
    )


def test_the_adapter_tutorial_shows_the_example_package() -> None:
    paths = {path for doc, path, _ in marked_blocks() if doc == "docs/adapters.md"}
    assert "examples/lines_gateway/pyproject.toml" in paths
    assert "examples/lines_gateway/tests/test_lines_gateway.py" in paths
    assert ("docs/adapters.md", "examples/lines_gateway/lines_gateway/__init__.py") in (
        whole_files()
    )
