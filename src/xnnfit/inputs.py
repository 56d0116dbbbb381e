"""Model input specs and sample data: seeded random within realistic ranges, or from an .npz."""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from xnnfit.errors import InputDataError

if TYPE_CHECKING:
    from xnnfit.tflite.graph import ModelGraph


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """One model input with its shape pinned."""

    name: str
    shape: tuple[int, ...]  # -1 kept only with --dynamic-batch
    dtype: str
    high: int | None = None  # exclusive upper bound for integer inputs (token ids)


def parse_input_shapes(items: list[str] | None) -> dict[str, tuple[int, ...]]:
    """{'tokens': (1, 128)} from ['tokens=1,128']; XnnfitError on malformed text."""
    out: dict[str, tuple[int, ...]] = {}
    for item in items or []:
        name, sep, dims = item.partition("=")
        try:
            shape = tuple(int(d) for d in dims.split(",") if d.strip())
        except ValueError:
            shape = ()
        if not sep or not name or not shape or any(d < 1 for d in shape):
            raise InputDataError(f"cannot read --input-shape {item!r}. Write NAME=D1,D2,... with positive sizes, e.g. tokens=1,128.")
        out[name.strip()] = shape
    return out


def random_inputs(specs: tuple[InputSpec, ...], count: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """`count` samples of seeded random data of each input's dtype and range."""
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(count):
        sample = {}
        for s in specs:
            shape = tuple(1 if d < 0 else d for d in s.shape)
            if s.dtype.startswith("float"):
                sample[s.name] = rng.uniform(-1.0, 1.0, shape).astype(s.dtype)
            elif s.dtype == "bool":
                sample[s.name] = np.ones(shape, dtype=bool)
            else:
                sample[s.name] = rng.integers(0, s.high or 2, shape).astype(s.dtype)
        samples.append(sample)
    return samples


def load_npz(path: str | Path, specs: tuple[InputSpec, ...]) -> list[dict[str, np.ndarray]]:
    """Samples from an .npz: one array per input (by name, or arr_0.. in order), first axis = samples."""
    if not Path(path).is_file():
        raise InputDataError(f"cannot read {str(path)!r}: no such file. Check the path.")
    if not zipfile.is_zipfile(path):
        raise InputDataError(f"{str(path)!r} is not an .npz archive. Save inputs with numpy.savez(path, name=array).")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError) as exc:
        reason = str(exc).rstrip(".")
        raise InputDataError(f"cannot read {str(path)!r} as .npz: {reason}. Save it with numpy.savez(path, name=array).") from exc
    if not arrays:
        raise InputDataError(f"{str(path)!r} holds no arrays. Save one array per model input, first axis = samples.")
    picked = {}
    for i, s in enumerate(specs):
        key = s.name if s.name in arrays else (f"arr_{i}" if f"arr_{i}" in arrays else None)
        if key is None and len(specs) == 1 and len(arrays) == 1:
            key = next(iter(arrays))
        if key is None:
            raise InputDataError(f"{str(path)!r} has no array for input {s.name!r} (it has {', '.join(arrays)}). Name arrays after the inputs.")
        arr = arrays[key]
        want = tuple(d for d in s.shape[1:])
        if arr.ndim != len(s.shape) or (want and tuple(arr.shape[1:]) != tuple(abs(d) for d in want)):
            raise InputDataError(
                f"array {key!r} in {str(path)!r} has shape {arr.shape}; input {s.name!r} needs (samples, {', '.join(map(str, want))}). "
                "Stack samples on the first axis."
            )
        if arr.shape[0] == 0:
            raise InputDataError(f"array {key!r} in {str(path)!r} holds no samples. Put at least one sample on the first axis.")
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise InputDataError(f"array {key!r} in {str(path)!r} contains NaN or infinite values. Clean the data first.")
        if np.dtype(s.dtype).kind != arr.dtype.kind and not (arr.dtype.kind in "iu" and np.dtype(s.dtype).kind in "iu"):
            raise InputDataError(f"array {key!r} in {str(path)!r} has dtype {arr.dtype}; input {s.name!r} needs {s.dtype}. Cast it.")
        picked[s.name] = arr.astype(s.dtype)
    n = min(a.shape[0] for a in picked.values())
    batch = max(1, specs[0].shape[0]) if specs and specs[0].shape else 1
    return [{k: v[i : i + batch] for k, v in picked.items()} for i in range(0, n - batch + 1, batch)]


def tflite_input_specs(graph: ModelGraph) -> tuple[InputSpec, ...]:
    """Input specs of a .tflite's primary subgraph; integer inputs that index a table get its size as range."""
    sub = graph.primary
    consumers = sub.consumers()
    specs = []
    for t in sub.inputs:
        tensor = sub.tensors[t]
        high = None
        if tensor.dtype.startswith(("int", "uint")):
            for c in consumers.get(t, []):
                op = sub.ops[c]
                if op.op in ("GATHER", "EMBEDDING_LOOKUP") and len(op.inputs) > 1 and op.inputs[1] == t:
                    table = sub.tensors[op.inputs[0]]
                    if table.shape:
                        high = table.shape[0] if high is None else min(high, table.shape[0])
        specs.append(InputSpec(input_name(tensor.name), tensor.shape_signature or tensor.shape, tensor.dtype, high))
    return tuple(specs)


def input_name(tensor_name: str) -> str:
    """'tokens' for 'serving_default_tokens:0'; the name users see in npz keys."""
    name = tensor_name.split(":")[0]
    return name[len("serving_default_"):] if name.startswith("serving_default_") else name
