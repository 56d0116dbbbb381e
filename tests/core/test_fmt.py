"""Numbers as printed: a share never rounds a fallback away; counts read as English."""

from __future__ import annotations

import pytest

from xnnfit.core.fmt import more, pct, plural


@pytest.mark.parametrize(
    ("share", "text"),
    [
        (0.996, "99.6%"),
        (0.9999, "99.99%"),
        (1.0, "100%"),
        (0.0, "0%"),
        (0.004, "0.4%"),
        (0.5, "50%"),
        (0.123, "12%"),
        (1e-9, "<0.0001%"),
        (1 - 1e-9, ">99.9999%"),
    ],
)
def test_pct_never_rounds_to_all_or_nothing(share, text):
    assert pct(share) == text


def test_plurals_and_cuts():
    assert plural(1, "partition") == "1 partition" and plural(0, "partition") == "0 partitions"
    assert more(3, 3, "x") == "" and more(3, 10, "--all-nodes") == "+7 more (--all-nodes)"


def test_headline_never_rounds_a_fallback_away_and_reads_as_english():
    from xnnfit.explain.diagnosis import Diagnosis
    from xnnfit.explain.verdicts import NodeVerdict
    from xnnfit.observe.delegation import Partition
    from xnnfit.report.terminal import headline

    nodes = tuple(NodeVerdict(0, i, "ADD", i != 7, 0, None, None, None) for i in range(250))
    d = Diagnosis(
        "fp32", nodes=nodes, partitions=(Partition(0, True, ()), Partition(1, False, (7,)), Partition(2, True, ()))
    )
    assert headline(d) == "250 nodes: 249 on XNNPACK (99.6%), 1 on CPU kernels; 3 partitions (2 on XNNPACK)"
    one = Diagnosis(
        "fp32", nodes=(NodeVerdict(0, 0, "CAST", False, 0, None, None, None),), partitions=(Partition(0, False, (0,)),)
    )
    assert headline(one) == "1 node: 0 on XNNPACK (0%), 1 on CPU kernels; 1 partition (0 on XNNPACK)"
