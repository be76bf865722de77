"""The HTML report rendered by a real browser (headless Chromium), offline: every chart is in
the page, the screenshot is not blank, the console shows no error and nothing is fetched."""

from __future__ import annotations

import base64
import io
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tests.conftest import run_cli
from xaicli import explain

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium; .ci/run installs it)",
)

BROWSER_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
    # any request that tries to leave the machine fails
    "--proxy-server=127.0.0.1:9",
    "--host-resolver-rules=MAP * ~NOTFOUND",
)
CONSOLE_ERRORS = re.compile(r"Uncaught|ERROR:CONSOLE|Failed to load resource|net::ERR_")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """A report of a binary classifier on 25 breast-cancer features (rows by position)."""
    folder = tmp_path_factory.mktemp("browser")
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X = X.iloc[:, :25]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    data = folder / "cancer.parquet"
    X.to_parquet(data, index=False)
    attributions = folder / "cancer.attributions.parquet"
    explain(model, data, out=attributions, n_jobs=1)
    out = folder / "report.html"
    result = run_cli("report", attributions, "--data", data, "--out", out, "--rows", "0,7")
    assert result.exit_code == 0, result.stderr
    return out


def _chromium(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(CHROMIUM), *BROWSER_FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )


def test_every_chart_is_in_the_rendered_page(report, tmp_path):
    html = report.read_text()
    expected = re.findall(r'<figure class="chart" id="([^"]+)"', html)
    # binary classifier: importance, beeswarm, dependence, two extremes and two requested rows
    assert len(expected) == 7
    result = _chromium(report, tmp_path / "profile", "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    for chart_id in expected:
        found = re.search(rf'<figure class="chart" id="{chart_id}"><img [^>]*src="([^"]+)"', dom)
        assert found, f"chart {chart_id} is not in the page the browser built"
        mime, payload = re.match(r"data:(image/[a-z+]+);base64,(.*)", found.group(1)).groups()
        image = base64.b64decode(payload, validate=True)
        assert image.startswith(b"\x89PNG") if mime == "image/png" else b"<svg" in image[:500]
    assert "deterministic sample of 569 rows" in re.sub(r"<[^>]+>", "", dom)
    assert not CONSOLE_ERRORS.search(result.stderr), result.stderr[-2000:]


def test_screenshot_is_not_blank_and_nothing_is_fetched(report, tmp_path):
    html = report.read_text()
    assert not re.search(r"https?://", html), "the page refers to a URL"
    assert not re.search(r"<script|<link|@import|url\(|src=\"(?!data:)", html)
    shot = tmp_path / "shot.png"
    result = _chromium(
        report, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,3000"
    )
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    assert not CONSOLE_ERRORS.search(result.stderr), result.stderr[-2000:]
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(shot.read_bytes())).convert("L"), dtype=float)
    assert pixels.shape == (3000, 1200)
    assert pixels.std() > 20  # a white page has 0; text and charts make it vary
    # the charts are drawn: many rows of the page hold coloured pixels, not only text
    colour = np.asarray(Image.open(shot).convert("RGB"), dtype=int)
    saturated = (colour.max(axis=2) - colour.min(axis=2)) > 60
    assert saturated.any(axis=1).sum() > 500
