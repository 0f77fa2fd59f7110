"""Fenced code blocks of the user's guide (docs/*.md): which run, which are skipped, and why.

A block runs when its fence says ``python``/``py`` or ``bash``/``sh``/``shell``. A block that must not run
(a real cluster address, real AWS, ``make test`` itself) is preceded by a visible marker on the line
(or the blank lines) just above its fence::

    <!-- skip-test: needs a real Ray cluster -->

Other fences (``text``, ``yaml``, ``json``, ``console``) are output or file listings and never run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
RUNNABLE = {"python": "python", "py": "python", "bash": "bash", "sh": "bash", "shell": "bash"}
_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)[^\n]*$")
_SKIP = re.compile(r"^\s*<!--\s*skip-test:(?P<reason>.*?)-->\s*$")


@dataclass(frozen=True)
class Block:
    page: str  # path relative to docs/
    line: int  # 1-based line of the opening fence
    lang: str  # "python" or "bash" for runnable blocks, else the fence's word
    code: str
    skip_reason: str | None  # None: runs; "": marker without a reason (a test rejects it)

    @property
    def runnable(self) -> bool:
        return self.lang in ("python", "bash")

    @property
    def where(self) -> str:
        return f"docs/{self.page}:{self.line}"


def pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if "examples" not in p.relative_to(DOCS).parts)


def blocks(page: Path) -> list[Block]:
    """Every fenced block of ``page``, in order."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, indent = match["fence"], len(match["indent"])
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not (lines[i].strip().startswith(fence) and lines[i].strip().strip(fence[0]) == ""):
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
            i += 1
        i += 1  # past the closing fence
        lang = RUNNABLE.get(match["lang"].lower(), match["lang"].lower())
        found.append(Block(str(page.relative_to(DOCS)), start + 1, lang, "\n".join(body) + "\n",
                           _skip_reason(lines, start)))
    return found


def _skip_reason(lines: list[str], fence_index: int) -> str | None:
    j = fence_index - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    if j < 0:
        return None
    marker = _SKIP.match(lines[j])
    return None if marker is None else marker["reason"].strip()


def all_blocks() -> list[Block]:
    return [b for page in pages() for b in blocks(page)]
