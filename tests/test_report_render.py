"""The HTML report renders in headless Chromium with every image decoded (skipped without Chromium)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from forgetlab.report.html import write_report
from tests.test_report import cross_task_summary, generic_summary, make_run, study_a_summary

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "check_report_render.py"


def _load_checker():
    spec = importlib.util.spec_from_file_location("check_report_render", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


checker = _load_checker()


@pytest.fixture(scope="module")
def chromium() -> str:
    found = checker.find_chromium()
    if found is None:
        pytest.skip("no Chromium binary (FORGETLAB_CHROMIUM, /usr/bin/chromium, chromium, chromium-browser or google-chrome "
                    "on PATH); install one (Debian: apt-get install chromium) to run the render check")
    return found


@pytest.mark.parametrize("make_summary", [study_a_summary, cross_task_summary, generic_summary], ids=["study_a", "cross_task", "generic"])
def test_report_renders_with_all_images(tmp_path, chromium, make_summary):
    path = write_report(make_run(tmp_path, make_summary()))
    decoded, total = checker.check(path, chromium)
    assert decoded == total == path.read_text().count("<img ") and total > 0


def test_check_catches_a_broken_image(tmp_path, chromium):
    path = write_report(make_run(tmp_path, study_a_summary(extras=False)))
    text = path.read_text()
    start = text.index("base64,") + len("base64,")
    broken = tmp_path / "broken.html"
    broken.write_text(text[:start] + "AAAA" + text[start + 64:])
    with pytest.raises(checker.RenderError, match="decoded"):
        checker.check(broken, chromium)


def test_script_exit_codes(tmp_path, chromium):
    path = write_report(make_run(tmp_path, study_a_summary(extras=False)))
    ok = subprocess.run([sys.executable, str(SCRIPT), str(path)], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0 and ok.stdout.startswith("ok:"), ok.stderr
    no_marker = tmp_path / "no_marker.html"
    no_marker.write_text(path.read_text().replace('setAttribute("data-rendered"', 'setAttribute("data-other"'))
    failed = subprocess.run([sys.executable, str(SCRIPT), str(no_marker)], capture_output=True, text=True, timeout=300)
    assert failed.returncode == 1 and "data-rendered" in failed.stderr
