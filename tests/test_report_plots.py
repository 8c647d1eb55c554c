"""What every report's plots share: PNG bytes, safe file names and labels, numbers and curves read from runs."""

from __future__ import annotations

from forgetlab.report.plots import curves, interval, number, plt, png_bytes, slug, text


def test_slugs_are_file_names_and_keep_names_apart():
    assert slug("boolq") == "boolq" and slug("arc_easy-2") == "arc_easy-2"
    odd = slug("a<b>&c")
    assert odd.startswith("a_b_c-") and "/" not in slug("x/y") and slug("a/b") != slug("a?b")
    assert text("$5") == r"\$5"


def test_numbers_and_intervals():
    assert number(1) == 1.0 and number(True) is None and number(float("inf")) is None and number("1") is None
    assert interval([0.1, 0.2]) == (0.1, 0.2) and interval([0.1, None]) is None and interval(None) is None


def test_curves_group_sort_and_skip():
    rows = [
        {"task": "a", "step": 4, "value": 0.5}, {"task": "a", "step": 0, "value": 0.9}, {"task": "b", "step": 1, "value": None},
        {"task": "skip", "step": 1, "value": 1.0},
    ]
    found = curves(rows, lambda row: None if row["task"] == "skip" else row["task"])
    assert found == {"a": [(0, 0.9), (4, 0.5)]}


def test_the_same_figure_gives_the_same_bytes():
    def draw() -> bytes:
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        return png_bytes(fig)

    open_before = plt.get_fignums()
    assert draw() == draw() and plt.get_fignums() == open_before  # closed once saved
