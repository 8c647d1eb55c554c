"""The HTML report renders in headless Chromium with every image decoded.

Without Chromium these tests skip, unless ``FORGETLAB_REQUIRE_BROWSER`` is set (``.ci/run`` sets it):
then they fail, so CI can never pass without having rendered the report.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from forgetlab.experiments import write_run_report
from tests.report_checks import golden_runs, make_run, study_a_summary

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "check_report_render.py"


def _load_checker():
    spec = importlib.util.spec_from_file_location("check_report_render", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


checker = _load_checker()


def browser_required() -> bool:
    """Whether a missing Chromium fails the render tests (``FORGETLAB_REQUIRE_BROWSER`` set, not 0)."""
    return os.environ.get("FORGETLAB_REQUIRE_BROWSER", "") not in ("", "0")


@pytest.fixture(scope="module")
def chromium() -> str:
    found = checker.find_chromium()
    if found is None:
        message = ("no Chromium binary (FORGETLAB_CHROMIUM, /usr/bin/chromium, chromium, chromium-browser or google-chrome "
                   "on PATH); install one (Debian: apt-get install chromium) to run the render check")
        if browser_required():
            pytest.fail(f"{message}; FORGETLAB_REQUIRE_BROWSER is set, so this is an error", pytrace=False)
        pytest.skip(message)
    return found


@pytest.mark.parametrize("experiment", ["forget_generalization", "cross_task", "id_vs_ood", "unlearn"])
def test_report_renders_with_all_images(tmp_path, chromium, experiment):
    """The report of a real run of each experiment (its golden files), every figure included."""
    path = write_run_report(golden_runs(tmp_path)[experiment][0])
    decoded, total = checker.check(path, chromium)
    assert decoded == total == path.read_text().count("<img ") and total > 0


def test_check_catches_a_broken_image(tmp_path, chromium):
    path = write_run_report(make_run(tmp_path, study_a_summary(extras=False)))
    text = path.read_text()
    start = text.index("base64,") + len("base64,")
    broken = tmp_path / "broken.html"
    broken.write_text(text[:start] + "AAAA" + text[start + 64:])
    with pytest.raises(checker.RenderError, match="decoded"):
        checker.check(broken, chromium)


def test_script_exit_codes(tmp_path, chromium):
    path = write_run_report(make_run(tmp_path, study_a_summary(extras=False)))
    ok = subprocess.run([sys.executable, str(SCRIPT), str(path)], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0 and ok.stdout.startswith("ok:"), ok.stderr
    no_marker = tmp_path / "no_marker.html"
    no_marker.write_text(path.read_text().replace('setAttribute("data-rendered"', 'setAttribute("data-other"'))
    failed = subprocess.run([sys.executable, str(SCRIPT), str(no_marker)], capture_output=True, text=True, timeout=300)
    assert failed.returncode == 1 and "data-rendered" in failed.stderr


def test_missing_browser_fails_when_required(tmp_path):
    """With FORGETLAB_REQUIRE_BROWSER (as in CI) and no Chromium the render tests fail instead of skipping."""
    env = dict(os.environ, FORGETLAB_CHROMIUM=str(tmp_path / "no-chromium"), FORGETLAB_REQUIRE_BROWSER="1")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"{__file__}::test_check_catches_a_broken_image"]
    run = subprocess.run(command, env=env, cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=300)
    assert run.returncode == 1 and "1 error" in run.stdout and "FORGETLAB_REQUIRE_BROWSER is set" in run.stdout, run.stdout


def test_sweep_report_renders_with_all_images(tmp_path, chromium):
    from forgetlab.sweep.report import write_sweep_report
    from tests.test_sweep_report import sweep_results

    path = write_sweep_report(tmp_path, sweep_results())
    decoded, total = checker.check(path, chromium)
    assert decoded == total == 8
