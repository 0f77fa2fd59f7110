"""Every Python and shell example of the user's guide runs, page by page, so that no page goes stale.

Each page runs in a fresh temporary directory, in a subprocess (see ``run_page.py``), with the project's
``.venv/bin`` first on PATH and a copy of ``docs/examples/`` at ``docs/examples/`` (examples run from the
repository root, as a reader's would). Pages that use S3 get the local moto server through the standard AWS
environment variables (``AWS_ENDPOINT_URL``, dummy keys) and a fresh bucket in ``BUCKET``, so the same code
runs unchanged against real S3 with real credentials.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from doc_blocks import DOCS, ROOT, Block, all_blocks, blocks, pages

RUNNER = Path(__file__).with_name("run_page.py")
# Skipped examples must stay the exception: each needs a reason, and there may be only a few.
MAX_SKIPPED = 8
PAGE_TIMEOUT_S = 420


def _runnable(page: Path) -> list[Block]:
    return [b for b in blocks(page) if b.runnable and b.skip_reason is None]


RUN_PAGES = [p for p in pages() if _runnable(p)]


def _environment(tmp: Path, s3: dict[str, str] | None) -> dict[str, str]:
    # pages run as a user runs them: with the opening estimate the test session switches off (tests/conftest.py)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "RAY_ADDRESS", "PYTEST_", "PAD_SDK_ESTIMATE"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update({
        "HOME": str(tmp / "home"),  # nothing an example writes lands in the real home directory
        "MPLBACKEND": "Agg",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": "1",  # the test machine has two shared cores; examples are tiny
        # Ray keeps its session files (and the address an embedded cluster records) in a short private path
        "RAY_TMPDIR": tempfile.mkdtemp(prefix="padray-"),
        "RAY_USAGE_STATS_ENABLED": "0",
        # the layouts page writes and reads repositories with `datasets`: never online, no progress bars
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    })
    (tmp / "home").mkdir(exist_ok=True)
    if s3 is not None:
        env.update(s3)
    return env


def _s3_environment(request: pytest.FixtureRequest) -> dict[str, str]:
    server = request.getfixturevalue("s3_server")
    bucket = request.getfixturevalue("s3_bucket")()
    return {"AWS_ENDPOINT_URL": server.endpoint_url, "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1", "BUCKET": bucket}


def run_page(page: Path, tmp: Path, request: pytest.FixtureRequest) -> subprocess.CompletedProcess[str]:
    runnable = _runnable(page)
    uses_s3 = any("s3://" in b.code or "BUCKET" in b.code for b in runnable)
    env = _environment(tmp, _s3_environment(request) if uses_s3 else None)
    # Examples run from the repository root in a checkout; the example files are where they say.
    shutil.copytree(DOCS / "examples", tmp / "docs" / "examples")
    spec = tmp / ".blocks.json"
    spec.write_text(json.dumps([{"where": b.where, "lang": b.lang, "code": b.code} for b in runnable]))
    try:
        return subprocess.run([sys.executable, str(RUNNER), str(spec)], cwd=tmp, env=env, text=True,
                              capture_output=True, timeout=PAGE_TIMEOUT_S, check=False)
    finally:
        shutil.rmtree(env["RAY_TMPDIR"], ignore_errors=True)


@pytest.mark.slow
@pytest.mark.parametrize("page", RUN_PAGES, ids=[str(p.relative_to(DOCS)) for p in RUN_PAGES])
def test_page_examples_run(page: Path, request: pytest.FixtureRequest) -> None:
    # A short working directory: Ray keeps its sockets under a local storage path only when it is short
    tmp = Path(tempfile.mkdtemp(prefix="paddoc-"))
    try:
        done = run_page(page, tmp, request)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if done.returncode != 0:
        pytest.fail(f"an example of docs/{page.relative_to(DOCS)} failed\n--- stdout (tail)\n{done.stdout[-6000:]}"
                    f"\n--- stderr (tail)\n{done.stderr[-6000:]}", pytrace=False)


def test_examples_exist_and_skips_are_few_and_explained() -> None:
    found = [b for b in all_blocks() if b.runnable]
    skipped = [b for b in found if b.skip_reason is not None]
    unexplained = [b.where for b in skipped if not b.skip_reason]
    assert not unexplained, f"skip-test markers need a reason: {unexplained}"
    assert len(found) - len(skipped) >= 20, "the guide's examples should run as tests"
    assert len(skipped) <= MAX_SKIPPED, [f"{b.where}: {b.skip_reason}" for b in skipped]
    assert len(skipped) * 4 < len(found), "most examples must run"


def test_no_unknown_languages_hide_code() -> None:
    """A fence must name what it holds, so that code is never left untested by a missing language word."""
    allowed = {"python", "bash", "text", "yaml", "json", "console", "toml", "ini", "html"}
    odd = [f"{b.where}: {b.lang or '(none)'}" for b in all_blocks() if b.lang not in allowed]
    assert not odd, odd


def test_policy_examples_load() -> None:
    import policies

    files = sorted((DOCS / "examples" / "policies").glob("*.y*ml"))
    assert files
    for path in files:
        policies.load_policy(path)


def test_pages_are_in_the_navigation() -> None:
    import yaml

    config: dict[str, Any] = yaml.safe_load((ROOT / "mkdocs.yml").read_text())

    def walk(node: Any) -> list[str]:
        if isinstance(node, str):
            return [node]
        if isinstance(node, dict):
            return [p for v in node.values() for p in walk(v)]
        return [p for v in node for p in walk(v)]

    listed = set(walk(config["nav"]))
    missing = [str(p.relative_to(DOCS)) for p in pages() if str(p.relative_to(DOCS)) not in listed]
    assert not missing, f"pages missing from mkdocs.yml nav: {missing}"
