#!/usr/bin/env python3
"""Check that a forgetlab HTML report renders in headless Chromium with every image decoded.

    python scripts/check_report_render.py runs/<run>/report.html

The report's inline script sets ``<body data-rendered="decoded/total">`` after load; this loads the file
in headless Chromium (``--dump-dom``, no network, throw-away profile) and checks that the marker is there,
that every image decoded, and that the count equals the ``<img>`` tags of the file.
Exit 0: rendered; 1: it did not (one line says why); 2: usage error or no Chromium found.
Chromium: ``$FORGETLAB_CHROMIUM``, else ``/usr/bin/chromium``, else ``chromium``, ``chromium-browser`` or
``google-chrome`` on PATH. Standard library only, so it runs with any Python 3.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--no-first-run",
    "--no-default-browser-check",
    "--mute-audio",
    # Let the page finish (load handlers included) before the DOM is dumped.
    "--virtual-time-budget=10000",
)


class RenderError(Exception):
    """The report did not render as expected."""


def find_chromium() -> str | None:
    """The Chromium binary to use, or None."""
    configured = os.environ.get("FORGETLAB_CHROMIUM")
    if configured:
        return configured if Path(configured).is_file() or shutil.which(configured) else None
    if Path("/usr/bin/chromium").is_file():
        return "/usr/bin/chromium"
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.rendered: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.count += 1
        elif tag == "body":
            self.rendered = dict(attrs).get("data-rendered")


def _scan(text: str) -> _Images:
    parser = _Images()
    parser.feed(text)
    parser.close()
    return parser


def dump_dom(html_path: Path, chromium: str, timeout: float = 120.0) -> str:
    """The DOM of the page after load, as serialised by headless Chromium."""
    with tempfile.TemporaryDirectory(prefix="forgetlab-chromium-") as profile:
        command = [chromium, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", html_path.resolve().as_uri()]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env={**os.environ, "HOME": profile})
        except subprocess.TimeoutExpired:
            raise RenderError(f"chromium did not finish within {timeout:.0f} s") from None
    if done.returncode != 0 or not done.stdout.strip():
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise RenderError(f"chromium exited with {done.returncode} and {'no' if not done.stdout.strip() else 'some'} DOM: {tail}")
    return done.stdout


def check(html_path: Path, chromium: str, timeout: float = 120.0) -> tuple[int, int]:
    """(decoded, total) images; raises RenderError unless every image of the file decoded."""
    expected = _scan(html_path.read_text(encoding="utf-8")).count
    dom = _scan(dump_dom(html_path, chromium, timeout))
    if dom.rendered is None:
        raise RenderError("no data-rendered marker on <body>: the page's load script did not run")
    match = re.fullmatch(r"(\d+)/(\d+)", dom.rendered)
    if not match:
        raise RenderError(f"unexpected data-rendered marker {dom.rendered!r}")
    decoded, total = int(match.group(1)), int(match.group(2))
    if total != expected:
        raise RenderError(f"the page has {total} images after load, the file has {expected} <img> tags")
    if decoded != total:
        raise RenderError(f"only {decoded} of {total} images decoded")
    return decoded, total


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print(__doc__.strip().splitlines()[0] + "\nusage: check_report_render.py REPORT.html", file=sys.stderr)
        return 2
    path = Path(argv[0])
    if not path.is_file():
        print(f"error: {path}: no such file", file=sys.stderr)
        return 2
    chromium = find_chromium()
    if chromium is None:
        print("error: no Chromium found (set FORGETLAB_CHROMIUM, or install chromium)", file=sys.stderr)
        return 2
    try:
        decoded, total = check(path, chromium)
    except RenderError as error:
        print(f"FAIL: {path}: {error}", file=sys.stderr)
        return 1
    print(f"ok: {path} rendered in {chromium}; {decoded}/{total} images decoded")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
