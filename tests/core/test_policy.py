"""The verification policy: every threshold named with its reason; a rule's exactness picks its bound."""

from __future__ import annotations

import dataclasses

import pytest

from xnnfit.core.policy import DEFAULT_POLICY, VerifyPolicy
from xnnfit.core.record import Record


def test_every_threshold_states_why():
    for f in dataclasses.fields(VerifyPolicy):
        assert len(f.metadata.get("why", "")) > 30, f.name


def test_exactness_chooses_the_bound():
    assert DEFAULT_POLICY.bound("exact", None) == DEFAULT_POLICY.rounding_tolerance
    assert DEFAULT_POLICY.bound("tolerance", 0.05) == 0.05
    assert DEFAULT_POLICY.internal_bound("exact", None) == max(
        DEFAULT_POLICY.rounding_tolerance, DEFAULT_POLICY.internal_floor
    )
    strict = dataclasses.replace(DEFAULT_POLICY, rounding_tolerance=0.0, internal_floor=0.0)
    assert strict.bound("exact", 1.0) == 0.0


def test_policy_round_trips_as_data():
    assert VerifyPolicy.from_dict(DEFAULT_POLICY.to_dict()) == DEFAULT_POLICY


@dataclasses.dataclass(frozen=True)
class _Inner(Record):
    value: float
    tags: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class _Outer(Record):
    inner: tuple[_Inner, ...]
    maybe: _Inner | None = None
    pairs: tuple[tuple[str, tuple[int, ...]], ...] = ()
    table: dict[str, int] = dataclasses.field(default_factory=dict)


@pytest.mark.parametrize("value", [1.5, float("inf"), -float("inf")])
def test_records_round_trip_nested_and_special_floats(value):
    rec = _Outer((_Inner(value, ("a",)),), _Inner(0.0), (("x", (1, 2)),), {"k": 3})
    doc = rec.to_dict()
    assert doc["inner"][0]["value"] in (1.5, "inf", "-inf")
    assert _Outer.from_dict(doc) == rec
