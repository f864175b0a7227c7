"""`distill report` renders in headless Chromium with every embedded plot decoded."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from need import need
from planted_filters import PLANTED_OVERRIDES

from distill.errors import DistillError
from distill.filters import filter_run, load_filter_config
from distill.report import write_report

CHECK = """<script>
window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0 && i.naturalHeight > 0).length;
  document.body.setAttribute('data-images', ok + '/' + imgs.length);
});
</script>"""


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.fixture(scope="module")
def report(planted_run, tmp_path_factory):
    run, _ = planted_run
    out = tmp_path_factory.mktemp("report")
    filter_run(run, run / "corpus", config=load_filter_config(None, PLANTED_OVERRIDES))
    return write_report(run, out / "report.html")  # finds run/corpus/funnel.json


def test_report_is_self_contained(report):
    text = report.read_text()
    assert len(re.findall(r"<img [^>]*src='data:image/png;base64,", text)) == 4
    assert not re.search(r"(src|href)=['\"]https?:", text)
    assert "near_duplicate" in text and "decontamination" in text


@pytest.mark.slow
def test_report_renders_in_headless_chromium(report, tmp_path):
    browser = _chromium()
    need(browser is not None, "chromium not found (Debian: apt-get install chromium; scripts/setup.sh installs it "
                              "in test mode)")
    page = tmp_path / "page.html"
    page.write_text(report.read_text().replace("</body>", CHECK + "</body>"))
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    match = re.search(r'data-images="(\d+)/(\d+)"', result.stdout)
    assert match, result.stderr[-2000:]
    assert match.group(1) == match.group(2) == "4"


def test_report_without_funnel_fails_clearly(tmp_path):
    with pytest.raises(DistillError, match="no funnel.json"):
        write_report(tmp_path, tmp_path / "r.html")
