"""The page: keys that name a place in the summary, values shown rounded with their exact JSON, the document
that loads nothing and marks how many images decoded."""

from __future__ import annotations

import json

from forgetlab.report.page import CONTENT_SECURITY_POLICY, MISSING, Page, document, fmt, key_of, lookup, split_key
from tests.report_checks import resolve


def test_key_round_trip():
    for parts in (["tasks", "a.b", "x\\y", 0], ["plain"], ["", "odd"]):
        key = key_of(parts)
        assert split_key(key) == [str(p) for p in parts]
        assert resolve({"tasks": {"a.b": {"x\\y": [7]}}, "plain": 1, "": {"odd": 2}}, key) in (7, 1, 2)


def test_lookup_follows_dicts_and_list_indices():
    summary = {"a": {"b": [10, {"c": None}]}}
    assert lookup(summary, ["a", "b", 1, "c"]) is None and lookup(summary, ["a", "b", "0"]) == 10
    assert lookup(summary, ["a", "x"]) is MISSING and lookup(summary, ["a", "b", 5]) is MISSING


def test_numbers_are_rounded_for_reading():
    assert fmt(0.8333333333333334) == "0.833" and fmt(3) == "3" and fmt(True) == "true" and fmt(None) == "—"
    assert fmt(0.00012, p=True) == "1.2e-04" and fmt(0.00012) == "0.000" and fmt(float("nan")) == "nan"


def test_values_carry_key_and_exact_value():
    page = Page({"tasks": {"a.b": {"acc": 0.8333333333333334, "acc_ci": [0.7, 0.9], "name": "<x>"}}})
    assert page.value(["tasks", "a.b", "acc"]) == '<span data-key="tasks.a\\.b.acc" data-value="0.8333333333333334">0.833</span>'
    assert "&lt;x&gt;" in page.value(["tasks", "a.b", "name"]) and "&quot;&lt;x&gt;&quot;" in page.value(["tasks", "a.b", "name"])
    assert page.value(["tasks", "missing"]) == '<span class="muted">—</span>'
    assert 'data-key="tasks.a\\.b.acc_ci.1"' in page.with_ci(["tasks", "a.b", "acc"])
    assert page.interval(["tasks", "a.b", "acc"]) == ""


def test_listed_names_every_entry_or_nothing():
    page = Page({"excluded": ["piqa", "boolq"], "none": []})
    page.listed(["excluded"], "Left out")
    page.listed(["none"], "Nothing")
    assert len(page.parts) == 1 and 'data-key="excluded.1"' in page.parts[0] and "Left out" in page.parts[0]


def test_a_view_within_a_prefix_reads_and_keys_under_it_and_adds_to_the_same_page():
    page = Page({"combined": {"tasks": {"rte": {"acc": 0.75, "acc_ci": [0.6, 0.9]}}, "excluded": ["wnli"]}, "tasks": {}})
    view = page.within("combined")
    assert view.value(["tasks", "rte", "acc"]) == '<span data-key="combined.tasks.rte.acc" data-value="0.75">0.750</span>'
    assert 'data-key="combined.tasks.rte.acc_ci.0"' in view.with_ci(["tasks", "rte", "acc"])
    view.section("behaviour", "Behaviour")
    view.listed(["excluded"], "Left out")
    assert page.sections == [("behaviour", "Behaviour")] and 'data-key="combined.excluded.0"' in page.parts[-1]
    assert page.value(["tasks", "rte", "acc"]) == '<span class="muted">—</span>'  # the page itself keeps no prefix


def test_document_is_self_contained_and_embeds_the_summary():
    summary = {"run": "</script><b>", "x": 1}
    page = Page(summary)
    page.section("first", "First & foremost")
    page.style(".extra { color: red; }")
    page.style(".extra { color: red; }")
    text = document(page, "title <t>")
    assert f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">' in text
    assert "default-src 'none'" in CONTENT_SECURITY_POLICY
    assert text.count(".extra { color: red; }") == 1
    assert '<a href="#first">First &amp; foremost</a>' in text and "<title>title &lt;t&gt;</title>" in text
    assert 'setAttribute("data-rendered"' in text
    embedded = text.split('<script type="application/json" id="summary">', 1)[1].split("</script>", 1)[0]
    assert "</script>" not in embedded and json.loads(embedded) == summary
