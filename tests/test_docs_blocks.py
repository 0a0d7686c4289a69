"""Every code block the docs mark ``<!-- file: PATH -->`` is a piece of that file, so what the
docs show is what the tests run (each of those files is run by a test of its own)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MARKED = re.compile(r"<!-- file: (\S+) -->\n```[a-z]*\n(.*?)```", re.DOTALL)


def marked_blocks() -> list[tuple[str, str, str]]:
    found = []
    for doc in [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]:
        for path, block in MARKED.findall(doc.read_text()):
            found.append((str(doc.relative_to(ROOT)), path, block))
    return found


def without_comments(text: str) -> str:
    text = re.sub(r"[ \t]+#.*", "", text)
    return "\n".join(line.rstrip() for line in text.splitlines())


@pytest.mark.parametrize(("doc", "path", "block"), marked_blocks())
def test_a_marked_block_is_in_its_file(doc: str, path: str, block: str) -> None:
    source = without_comments((ROOT / path).read_text())
    for chunk in re.split(r"\n\s*\n", without_comments(block)):
        if chunk.strip():
            assert chunk.strip("\n") in source, f"{doc} shows code that {path} lacks:\n{chunk}"


def test_the_adapter_tutorial_shows_the_example_package() -> None:
    paths = {path for doc, path, _ in marked_blocks() if doc == "docs/adapters.md"}
    assert "examples/lines_gateway/pyproject.toml" in paths
    assert "examples/lines_gateway/tests/test_lines_gateway.py" in paths
