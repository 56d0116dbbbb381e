"""Memory a model needs to run, estimated from its flatbuffer before anything is allocated, and the limit it must fit.

The estimate is a lower bound on the interpreter's arena: some op must hold all of its
non-constant inputs and outputs at once, so the largest such sum (at the pinned input
shapes) is allocated whatever the memory planner does. A model above the limit is
refused in seconds, with the input and shape that cause it, instead of growing until
the machine swaps or the OOM killer ends the run.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence

import numpy as np

from xnnfit.core import fmt
from xnnfit.core.errors import InputDataError
from xnnfit.core.policy import MEMORY_SHARE
from xnnfit.model.specs import InputSpec, input_name
from xnnfit.tflite.graph import SubgraphInfo

MEMORY_ENV = "XNNFIT_MAX_MEMORY"  # bytes (or 8G, 512M) a model's tensors may take; --max-memory sets it for the run
_UNITS = {
    "": 1,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "KI": 2**10,
    "MI": 2**20,
    "GI": 2**30,
    "TI": 2**40,
}  # as fmt.size prints


@dataclasses.dataclass(frozen=True)
class Footprint:
    """The least memory one interpreter of a model takes at the pinned shapes."""

    arena: int  # the largest sum of one op's non-constant inputs and outputs
    inputs: int  # the inputs at their run shapes (a sample the caller holds as well)
    largest_input: str  # 'x float32 [1, 20000, 20000, 3]'
    resizable: bool = False  # the largest input has a dynamic dimension --input-shape can pin smaller
    largest_tensor: str = (
        ""  # the largest tensor that is not an input, when it outweighs every input: 'dense/MatMul float32 [..]'
    )

    @property
    def total(self) -> int:
        """What running the model once holds at least: the arena plus one sample of inputs."""
        return self.arena + self.inputs


def _itemsize(dtype: str) -> int:
    try:
        return np.dtype(dtype).itemsize
    except TypeError:
        return 0  # strings, resources, variants: no fixed size, and no model is big because of them


def _bytes(shape: Sequence[int], dtype: str) -> int:
    count = 1
    for d in shape:
        count *= max(int(d), 1)
    return count * _itemsize(dtype)


def estimate(sub: SubgraphInfo, specs: Sequence[InputSpec]) -> Footprint:
    """The footprint of `sub` with its inputs at the specs' run shapes (other tensors at their stored shapes)."""
    by_name = {s.name: s for s in specs}
    shapes = {t.index: t.shape for t in sub.tensors}
    largest, largest_bytes, inputs, resizable = "", -1, 0, False
    for t in sub.inputs:
        tensor = sub.tensors[t]
        spec = by_name.get(input_name(tensor.name))
        shape = spec.run_shape if spec is not None else tensor.shape
        shapes[t] = shape
        size = _bytes(shape, tensor.dtype)
        inputs += size
        if size > largest_bytes:
            largest, largest_bytes = f"{input_name(tensor.name)} {tensor.dtype} {list(shape)}", size
            resizable = spec.dynamic if spec is not None else tensor.dynamic
    arena, inner, inner_bytes = inputs, "", largest_bytes
    for op in sub.ops:
        live = {t for t in (*op.inputs, *op.outputs) if 0 <= t < len(sub.tensors) and not sub.tensors[t].constant}
        sizes = {t: _bytes(shapes[t], sub.tensors[t].dtype) for t in live}
        arena = max(arena, sum(sizes.values()))
        for t, size in sizes.items():
            if size > inner_bytes and t not in sub.inputs:
                tensor = sub.tensors[t]
                inner, inner_bytes = (
                    f"{tensor.name or f'#{t}'} {tensor.dtype} {list(shapes[t])}, written by node {op.index} {op.op}",
                    size,
                )
    return Footprint(arena, inputs, largest, resizable, inner)


def parse_size(text: str) -> int:
    """Bytes from '8G', '512M', '1.5GB' (decimal, as sizes are printed), '2GiB' (binary) or a plain number.

    InputDataError otherwise.
    """
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*((?:[KMGT]I?)?)B?\s*", text.upper())
    if not m:
        raise InputDataError(f"--max-memory {text!r} is not a size. Pass bytes or a size such as 8G or 512M.")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def available() -> int:
    """Memory left for this process: the kernel's MemAvailable, capped by the cgroup limit (containers, CI runners)."""
    free = None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    if free is None:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            free = 2**63
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        try:
            with open(limit_file, encoding="ascii") as f:
                text = f.read().strip()
            with open(usage_file, encoding="ascii") as f:
                used = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if text.isdigit() and int(text) < 2**60:
            free = min(free, max(int(text) - used, 0))
    return free


def limit() -> tuple[int, str]:
    """(bytes a model's run may take, where that number comes from)."""
    given = os.environ.get(MEMORY_ENV)
    if given:
        return parse_size(given), "--max-memory"
    free = available()
    return int(free * MEMORY_SHARE), f"{MEMORY_SHARE:.0%} of the {fmt.size(free)} available"


def refuse_if_too_large(sub: SubgraphInfo, specs: Sequence[InputSpec], what: str) -> Footprint:
    """The footprint; InputDataError (one line: the input, its shape, the figures, what to do) when over the limit."""
    found = estimate(sub, specs)
    cap, source = limit()
    if found.total > cap:
        if found.largest_tensor:  # an intermediate shape the file declares, not one an input pins
            raise InputDataError(
                f"{what} needs at least {fmt.size(found.total)} to run: it declares tensor "
                f"{found.largest_tensor}, larger than any input "
                f"({found.largest_input}), over the limit of {fmt.size(cap)} ({source}). A damaged or "
                "mis-exported file declares such "
                "shapes: re-export the model, or raise the limit with --max-memory SIZE if the shape is meant."
            )
        name = found.largest_input.split(" ", 1)[0]
        todo = (
            f"pin a smaller shape (--input-shape {name}=...)"
            if found.resizable
            else "export the model at a smaller input shape"
        )
        raise InputDataError(
            f"{what} needs at least {fmt.size(found.total)} to run at its input shapes (input "
            f"{found.largest_input}), over the limit of "
            f"{fmt.size(cap)} ({source}). To measure it here, {todo}, or raise the limit with --max-memory SIZE."
        )
    return found


def refuse_samples(specs: Sequence[InputSpec], count: int, what: str) -> None:
    """InputDataError when `count` samples of random input data at the specs' run shapes would exceed the limit."""
    need = count * sum(_bytes(s.run_shape, s.dtype) for s in specs)
    cap, source = limit()
    if need > cap:
        largest = max(specs, key=lambda s: _bytes(s.run_shape, s.dtype))
        raise InputDataError(
            f"{what} needs {fmt.size(need)} of sample data ({count} samples of input {largest.name} "
            f"{largest.dtype} {list(largest.run_shape)}), "
            f"over the limit of {fmt.size(cap)} ({source}). Pin a smaller shape with --input-shape, "
            "or raise the limit with --max-memory SIZE."
        )
