"""The site builds offline without a warning, and the CLI reference is the CLI's own help text."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from doc_blocks import DOCS, ROOT

sys.path.insert(0, str(DOCS))
import gen_cli  # docs/gen_cli.py, the generator of docs/cli.md


def test_cli_reference_is_generated_from_the_cli() -> None:
    committed = (DOCS / "cli.md").read_text(encoding="utf-8")
    assert committed == gen_cli.render(), "docs/cli.md is stale: run .venv/bin/python docs/gen_cli.py"


def test_cli_reference_covers_every_command() -> None:
    page = gen_cli.render()
    for name in gen_cli.command_names():
        assert f"## pad-sdk {name}" in page


@pytest.mark.slow
def test_mkdocs_builds_strict_and_offline(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="mkdocs is in the docs extra (pip install -e '.[docs]')")
    pytest.importorskip("mkdocstrings", reason="mkdocstrings is in the docs extra (pip install -e '.[docs]')")
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-6000:]
    assert "WARNING" not in done.stderr, done.stderr[-6000:]
    # Offline: no page loads a script, stylesheet or image from another host.
    remote = re.compile(r"""<(?:script|link|img)\b[^>]*\b(?:src|href)=["'](?:https?:)?//""", re.IGNORECASE)
    offenders = [str(p.relative_to(site)) for p in site.rglob("*.html") if remote.search(p.read_text())]
    assert not offenders, f"pages that load remote assets: {offenders}"
    for page in ("index.html", "quickstart.html", "api.html", "cli.html"):
        assert (site / page).is_file(), page
    api = (site / "api.html").read_text()
    assert "pad_sdk.distill" in api and "load_condensed" in api, "the API reference was not generated"
