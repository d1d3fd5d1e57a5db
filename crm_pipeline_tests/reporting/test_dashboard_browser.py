"""The page rendered by headless Chromium, offline: the plots exist after plotly.js ran, hostile names are text,
and a PNG of the page is written (look at it when the page changes)."""

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from crm_pipeline.reporting.dashboard import build_dashboard
from crm_pipeline_tests.reporting.test_dashboard import EVIL_CHANNEL, sample_inputs

CHROMIUM = Path("/usr/bin/chromium")
PLOTS = ("plot-device-hour", "plot-registrant-retention", "plot-cohorts", "plot-cohort-curves", "plot-attribution",
         "plot-funnel", "plot-service")

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed (Debian package "
                                                               "`chromium`; CI installs it)")


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    command = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,2000",
               "--virtual-time-budget=10000", *args]  # virtual time: the scripts finish before the capture
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("browser")
    path = tmp / "dashboard.html"
    text = build_dashboard(sample_inputs()).html
    path.write_text(text, encoding="utf-8")
    return path, text


def test_the_page_needs_no_network(page):
    _, text = page
    assert "<script src" not in text and "<link" not in text and "@import" not in text
    assert text.count("<script") - text.count("Plotly.newPlot") == 1  # plotly.js once, inline


def test_the_plots_are_drawn_and_hostile_names_stay_text(page, tmp_path):
    path, _ = page
    dom = chromium(tmp_path, "--dump-dom", path.as_uri()).stdout
    for div in PLOTS:  # plotly.js replaced each empty div by its plot: an SVG root inside the div
        drawn = dom.split(f'id="{div}"', 1)[1].split('id="plot-', 1)[0]
        assert 'class="main-svg"' in drawn, div
    assert dom.count('class="main-svg"') >= 2 * len(PLOTS)  # each plot has its SVG layers
    # the channel named like a script tag is a legend label (text), and no such element exists
    assert ">&lt;script&gt;alert(1)&lt;/script&gt;<" in dom
    assert EVIL_CHANNEL not in dom
    assert "Checks of the day: warned" in dom and 'data-kpi="aov_arpu"' in dom


def test_a_screenshot_of_the_page(page, tmp_path):
    path, _ = page
    png = tmp_path / "dashboard.png"
    chromium(tmp_path, f"--screenshot={png}", path.as_uri())
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
    assert (width, height) == (1400, 2000)
    assert len(data) > 50_000  # a drawn page, not a blank one (a blank 1400x2000 PNG is a few kB)
    shutil.copy(png, Path(path).with_suffix(".png"))  # kept beside the page in the pytest temp folder
