"""kb/versions.json is what the probes do on each runtime of the matrix: regenerated here, it must not have changed."""

from __future__ import annotations

import functools

import pytest

from xnnfit import probe_matrix
from xnnfit.kb import oneop
from xnnfit.kb.versions import CPU, DELEGATED, DIFFERS, HOLDS, NO_LOAD, knowledge, load
from xnnfit.runtime import targets

pytestmark = pytest.mark.slow


@functools.cache
def fresh() -> dict:
    return probe_matrix.derive()


def test_the_stored_table_is_what_the_runtimes_do_now():
    changes = probe_matrix.changes(load(), fresh())
    assert not changes, "kb/versions.json is stale; run `make kb-versions`:\n" + "\n".join(changes)


def test_the_installed_runtimes_row_agrees_with_the_kb_tables():
    row = fresh()["runtimes"][targets.default().spec]
    for op in sorted(set(oneop.SPECS) | set(oneop.SPECIAL)):
        for form in oneop.forms(op):
            want = oneop.expected(op, form).delegated
            got = row["ops"].get(f"{op}/{'int8' if form == oneop.INT8 else 'fp32'}")
            if got is None or want is None:
                continue  # a form whose node carries the other side's dtype (DEQUANTIZE) is keyed by its node
            assert (got == DELEGATED) == want, (
                f"{op}/{form}: table {got}, kb/tables.py says {'delegated' if want else 'CPU'}"
            )
    assert all(v != DIFFERS for k, v in row["causes"].items()), "a KB entry the installed runtime contradicts"


# What the LiteRT history says changed between versions (the list), each checked in the derived table.
CHANGES = [
    ("tflite-runtime==2.14.0", "CONV_2D/int8", CPU),  # int8 off in the 2.14 pip build ...
    ("ai-edge-litert==1.0.1", "CONV_2D/int8", DELEGATED),  # ... on from 1.0.1
    ("tflite-runtime==2.14.0", "BATCH_MATMUL/fp32", CPU),
    ("ai-edge-litert==1.0.1", "GELU/fp32", DELEGATED),  # exact GELU from 1.0.1
    ("ai-edge-litert==1.0.1", "GELU:approximate/fp32", CPU),  # approximate from 1.2.0
    ("ai-edge-litert==1.4.0", "GELU:approximate/fp32", DELEGATED),
    ("ai-edge-litert==1.0.1", "SIN/fp32", CPU),  # SIN/COS/EXP from 1.3.0
    ("ai-edge-litert==1.4.0", "SIN/fp32", DELEGATED),
    ("ai-edge-litert==1.0.1", "EXP/fp32", CPU),
    ("ai-edge-litert==1.4.0", "LOG/fp32", CPU),  # LOG from 2.1.6
    ("ai-edge-litert==2.3.0", "LOG/fp32", DELEGATED),
    ("tflite-runtime==2.14.0", "CONCATENATION:4-inputs/fp32", DELEGATED),  # up to 4 inputs on 2.14 ...
    ("tflite-runtime==2.14.0", "CONCATENATION:5-inputs/fp32", CPU),
    ("ai-edge-litert==1.0.1", "CONCATENATION:5-inputs/fp32", DELEGATED),  # ... 5 from 1.0.1
    ("tflite-runtime==2.14.0", "SLICE:size-minus-1/fp32", DELEGATED),  # size -1 taken on 2.14 ...
    ("ai-edge-litert==1.0.1", "SLICE:size-minus-1/fp32", CPU),  # ... refused from 1.0.1
    ("ai-edge-litert==1.0.1", "STRIDED_SLICE/fp32", CPU),  # mostly refused on 1.0.1
    ("tflite-runtime==2.14.0", "STABLEHLO_COMPOSITE/fp32", NO_LOAD),  # the SDPA composite does not load on 2.14
    ("tflite-runtime==2.14.0", "graph:dynamic-tensors/fp32", CPU),  # a dynamic tensor: no XNNPACK at all on 2.14 ...
    ("ai-edge-litert==1.0.1", "graph:dynamic-tensors/fp32", DELEGATED),  # ... partial delegation later
    (
        "tflite-runtime==2.14.0",
        "graph:prepare-time-shape/fp32",
        DELEGATED,
    ),  # a shape known before allocation is not dynamic
    ("tflite-runtime==2.14.0", "RESHAPE:prepare-time-shape/fp32", DELEGATED),  # ... and 2.14 even takes that reshape,
    ("ai-edge-litert==2.3.0", "RESHAPE:prepare-time-shape/fp32", CPU),  # which XNN020 refuses on the installed runtime
]


@pytest.mark.parametrize(("spec", "key", "verdict"), CHANGES, ids=[f"{s}-{k}" for s, k, _ in CHANGES])
def test_a_known_version_change_is_in_the_table(spec, key, verdict):
    assert fresh()["runtimes"][spec]["ops"][key] == verdict


def test_xnn035_holds_from_1_0_1_but_not_on_2_14():
    assert knowledge("tflite-runtime==2.14.0").causes["XNN035"] == DIFFERS
    assert all(knowledge(s).causes["XNN035"] == HOLDS for s in targets.MATRIX[1:])
