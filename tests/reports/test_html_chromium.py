"""The HTML report renders in a real browser: headless Chromium lays it out and screenshots it, and every
figure must be decoded and visibly drawn where the layout put it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from report_data import make_result

from pad_sdk.reports import build_report, render_html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (apt-get install -y chromium)")
WIDTH = 1280

# Appended to a copy of the report only: records where each figure landed and whether it decoded.
PROBE = """<script>
window.addEventListener("load", () => {
  const figures = [...document.querySelectorAll("img.figure")].map(img => {
    const r = img.getBoundingClientRect();
    return {name: img.dataset.figure, natural: img.naturalWidth, x: r.x, y: r.y + window.scrollY,
            w: r.width, h: r.height};
  });
  const pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify({height: document.documentElement.scrollHeight, figures});
  document.body.appendChild(pre);
});
</script>"""


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    command = [CHROMIUM or "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--force-device-scale-factor=1", f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def _layout(html: Path, tmp_path: Path) -> dict[str, Any]:
    probe = tmp_path / "probe.html"
    probe.write_text(html.read_text().replace("</body>", PROBE + "</body>"))
    done = _chromium("--virtual-time-budget=5000", f"--window-size={WIDTH},1200", "--dump-dom",
                     probe.as_uri(), profile=tmp_path / "profile-probe")
    match = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert match, f"no layout probe in Chromium's DOM dump; stderr: {done.stderr[-2000:]}"
    return json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def test_report_renders_in_chromium_with_every_figure_drawn(tmp_path: Path) -> None:
    report = build_report([make_result(1, condensed_acc=(0.5, 0.52)), make_result(10)])
    html = tmp_path / "report.html"
    html.write_text(render_html(report))
    layout = _layout(html, tmp_path)
    names = {f["name"] for f in layout["figures"]}
    assert names == {"sweep", "loss", "recall-ipc1", "recall-ipc10", "grid-ipc1", "grid-ipc10"}
    assert all(f["natural"] > 0 for f in layout["figures"]), "a figure failed to decode"

    shot = tmp_path / "screenshot.png"
    height = min(int(layout["height"]) + 50, 16000)
    done = _chromium(f"--screenshot={shot}", f"--window-size={WIDTH},{height}", html.as_uri(),
                     profile=tmp_path / "profile-shot")
    assert shot.exists(), done.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(np.int16)
    assert pixels.shape[:2] == (height, WIDTH)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50, "the screenshot is blank"
    for figure in layout["figures"]:
        top, left = int(figure["y"]), int(figure["x"])
        region = pixels[top:top + int(figure["h"]), left:left + int(figure["w"])]
        assert region.size and figure["w"] > 40 and figure["h"] > 40, f"{figure['name']} has no area"
        ink = (np.abs(region - 255).sum(axis=2) > 60).mean()
        assert ink > 0.02, f"figure {figure['name']} is (nearly) white in the screenshot: {ink:.3f}"
    # the condensed / full / random colours of the recall bars are on screen
    for colour in ((0x1F, 0x6F, 0xEB), (0x2D, 0xA4, 0x4E), (0xD4, 0xA7, 0x2C)):
        assert (np.abs(pixels - np.array(colour)).sum(axis=2) < 30).sum() > 500
