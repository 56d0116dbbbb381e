"""The HTML report in a real headless Chromium: one mark per node, CPU marks and causes as the result says.

No network, and a real picture.
"""

from __future__ import annotations

import json
import re

import pytest

from xnnfit.report.html import page, write_html

MAX_BYTES = 2 * 2**20  # the page must stay small enough to mail and open at once


def _open(browser, tmp_path, result, name="r.html"):
    path = write_html(result, tmp_path / name)
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    pg = context.new_page()
    requests = []
    pg.on("request", lambda r: requests.append(r.url))
    pg.goto(path.as_uri())
    return pg, requests, path


def test_profile_page_draws_every_node_and_nothing_leaves_the_page(browser, tmp_path, profiled):
    d = profiled.recipes[0]
    pg, requests, path = _open(browser, tmp_path, profiled)
    assert path.stat().st_size < MAX_BYTES
    assert requests == [path.as_uri()]  # the page itself, nothing else
    assert pg.locator("svg.strip .node").count() == len(d.observed)
    cpu = [n for n in d.observed if not n.delegated]
    assert pg.locator("svg.strip .node.cpu").count() == len(cpu)
    text = pg.inner_text("body")
    for n in cpu:
        assert n.op in text
        for c in n.causes:
            assert c in text
    # widths are time: the marks add up to the profile's pieces
    widths = pg.eval_on_selector_all("svg.strip .node", "els => els.map(e => parseFloat(e.getAttribute('data-ms')))")
    assert sum(widths) == pytest.approx(sum(p.stats.median_ms for p in d.profile.pieces), rel=1e-3)
    # clicking a cause dims every node it does not explain
    cause = cpu[0].causes[0]
    pg.locator(f"button[data-highlight='{cause}']").first.click()
    assert pg.locator("svg.strip .node.dim").count() == len([n for n in d.observed if cause not in n.causes])
    shot = pg.screenshot(full_page=True)
    assert len(shot) > 20_000  # a real picture, not a blank page
    assert len(set(shot[1000:20000])) > 50


def test_fix_page_draws_before_and_after_on_one_axis(browser, tmp_path, fixed):
    before, after = fixed.sides
    pg, requests, path = _open(browser, tmp_path, fixed)
    assert requests == [path.as_uri()]
    strips = pg.locator("svg.strip")
    assert strips.count() == 2
    assert strips.nth(0).locator(".node").count() == len(before.observed)
    assert strips.nth(1).locator(".node.cpu").count() == after.summary()["cpu_nodes"]
    # one time axis: the after strip is narrower by its saved time
    ends = pg.eval_on_selector_all(
        "svg.strip",
        "svgs => svgs.map(s => Math.max(...[...s.querySelectorAll('.node')].map(r => "
        "+r.getAttribute('x') + +r.getAttribute('width'))))",
    )
    total = [sum(p.stats.median_ms for p in s.profile.pieces) for s in (before, after)]
    assert ends[1] / ends[0] == pytest.approx(total[1] / total[0], rel=1e-3)
    text = pg.inner_text("body")
    for o in fixed.rewrite.applied:
        assert o.rule in text


def test_error_finding_is_on_the_page(browser, tmp_path, hazard_check):
    pg, _, _ = _open(browser, tmp_path, hazard_check)
    assert "XNN040" in pg.inner_text(".error")
    assert "xnnfit fix" in pg.inner_text(".next")


def test_page_is_self_contained_and_carries_its_data(profiled):
    html = page(profiled)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # no external resources
    assert "Content-Security-Policy" in html
    data = json.loads(
        re.search(r'<script type="application/json" id="xnnfit-result">(.*?)</script>', html, re.S).group(1)
    )
    assert data["result"] == "profile" and data["recipes"][0]["summary"] == profiled.recipes[0].summary()


def test_quant_and_optimize_pages_mark_the_choice(tmp_path):
    from xnnfit.choose.evaluation import EvalSet
    from xnnfit.choose.optimize import Candidate, OptimizeResult
    from xnnfit.choose.selection import Budget

    cands = (
        Candidate("fp32", "ok", median_ms=2.0, rel_error=0.0, pareto=True, size_bytes=1000),
        Candidate(
            "int8", "ok", median_ms=1.0, rel_error=0.02, pareto=True, size_bytes=300, fixed=True, rules=("XR001 ×2",)
        ),
        Candidate("fp16", "ok", median_ms=2.5, rel_error=0.001, pareto=False, size_bytes=500),
        Candidate("int16x8", "failed", error="the converter refused it"),
    )
    r = OptimizeResult(
        "m.keras",
        "int8",
        "fastest within budget",
        cands,
        "the fp32 conversion",
        "the fp32 conversion",
        2.0,
        Budget(0.05, None),
        EvalSet("eval.npz", 16, 16),
    )
    html = page(r)
    assert html.count('class="point') == 3 and html.count('class="point chosen"') == 1
    assert 'data-recipe="int8"' in html.split('class="point chosen"')[1][:200]
    assert "the converter refused it" in html
    with pytest.raises(TypeError, match="no HTML report"):
        page(object())


SCREENSHOT = __import__("pathlib").Path(__file__).resolve().parents[2] / "docs" / "report.png"
SCREENSHOT_BYTES = 300 * 1024  # the README's picture stays light


def test_readme_screenshot_is_this_report(browser, tmp_path, profiled):
    """docs/report.png is made here: XNNFIT_UPDATE_SCREENSHOT=1 rewrites it from the current page."""
    import dataclasses
    import os

    pg, _, _ = _open(browser, tmp_path, dataclasses.replace(profiled, model="examples/where_cnn.py:build"))
    pg.set_viewport_size({"width": 1100, "height": 760})
    shot = pg.screenshot()
    assert len(shot) < SCREENSHOT_BYTES
    if os.environ.get("XNNFIT_UPDATE_SCREENSHOT"):
        SCREENSHOT.write_bytes(shot)
    assert SCREENSHOT.is_file() and SCREENSHOT.stat().st_size < SCREENSHOT_BYTES
