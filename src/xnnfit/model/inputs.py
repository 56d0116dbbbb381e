"""Sample data for model inputs: seeded random within realistic ranges, or read and checked from an .npz."""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path

import numpy as np

from xnnfit.core.errors import InputDataError
from xnnfit.core.fmt import plural
from xnnfit.core.policy import DEFAULT_INPUT_RANGE
from xnnfit.core.record import Record
from xnnfit.model.specs import InputSpec


def sample_dtype(spec: InputSpec) -> np.dtype:
    """The numpy dtype of an input's samples: numpy's own, or ml_dtypes' (int4, bfloat16...), as the runtime uses.

    InputDataError for the tensor types no array can hold (string, resource, variant).
    """
    import ml_dtypes  # a dependency of ai-edge-litert: its Python API hands these types over as ml_dtypes arrays

    try:
        return np.dtype(getattr(ml_dtypes, spec.dtype, None) or spec.dtype)
    except TypeError:
        raise InputDataError(
            f"input {spec.name!r} is {spec.dtype}, a type numpy cannot hold, "
            "so xnnfit can neither make nor read sample data for it. "
            "xnnfit check needs no data; to time or fix the model, export it with float, integer or bool inputs."
        ) from None


def random_inputs(specs: tuple[InputSpec, ...], count: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """`count` samples of seeded random data of each input's dtype and range, at its run shape.

    Uniform over the spec's `value_range` (model/ranges.py decides it; integers for an
    integer input); without one, DEFAULT_INPUT_RANGE for floats, 0..high-1 for token ids.
    """
    rng = np.random.default_rng(seed)
    dtypes = {s.name: sample_dtype(s) for s in specs}
    samples = []
    for _ in range(count):
        sample = {}
        for s in specs:
            shape, dtype = s.run_shape, dtypes[s.name]
            low, high = s.value_range or DEFAULT_INPUT_RANGE
            if s.dtype.startswith(("float", "bfloat", "complex")):
                sample[s.name] = rng.uniform(low, high, shape).astype(dtype)
            elif s.dtype != "bool" and s.value_range is not None:
                sample[s.name] = rng.integers(int(low), int(high) + 1, shape).astype(dtype)
            elif s.dtype == "bool":
                sample[s.name] = np.ones(shape, dtype=bool)
            else:
                sample[s.name] = rng.integers(0, s.high or 2, shape).astype(dtype)
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
        raise InputDataError(
            f"cannot read {str(path)!r} as .npz: {reason}. Save it with numpy.savez(path, name=array)."
        ) from exc
    if not arrays:
        raise InputDataError(f"{str(path)!r} holds no arrays. Save one array per model input, first axis = samples.")
    picked = {}
    for i, s in enumerate(specs):
        key = s.name if s.name in arrays else (f"arr_{i}" if f"arr_{i}" in arrays else None)
        if key is None and len(specs) == 1 and len(arrays) == 1:
            key = next(iter(arrays))
        if key is None:
            raise InputDataError(
                f"{str(path)!r} has no array for input {s.name!r} (it has {', '.join(arrays)}). Name "
                "arrays after the inputs."
            )
        arr = arrays[key]
        want = s.run_shape[1:]
        if arr.ndim != len(s.shape) or (want and tuple(arr.shape[1:]) != want):
            raise InputDataError(
                f"array {key!r} in {str(path)!r} has shape {arr.shape}; input {s.name!r} needs (samples, "
                f"{', '.join(map(str, want))}). "
                "Stack samples on the first axis."
            )
        if arr.shape[0] == 0:
            raise InputDataError(
                f"array {key!r} in {str(path)!r} holds no samples. Put at least one sample on the first axis."
            )
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise InputDataError(
                f"array {key!r} in {str(path)!r} contains NaN or infinite values. Clean the data first."
            )
        _check_range(arr, s, f"array {key!r} in {str(path)!r}")
        if sample_dtype(s).kind != arr.dtype.kind and not (arr.dtype.kind in "iu" and sample_dtype(s).kind in "iu"):
            raise InputDataError(
                f"array {key!r} in {str(path)!r} has dtype {arr.dtype}; input {s.name!r} needs {s.dtype}. Cast it."
            )
        picked[s.name] = arr.astype(s.dtype)
    n = min(a.shape[0] for a in picked.values())
    batch = specs[0].run_shape[0] if specs and specs[0].shape else 1
    return [{k: v[i : i + batch] for k, v in picked.items()} for i in range(0, n - batch + 1, batch)]


def check_sample(sample: dict[str, np.ndarray], specs: tuple[InputSpec, ...]) -> None:
    """InputDataError unless `sample` has every input with a compatible shape and finite values."""
    for s in specs:
        if s.name not in sample:
            raise InputDataError(
                f"input data has no array for {s.name!r} (it has {', '.join(sample)}). Name arrays after "
                "the model inputs."
            )
        v = sample[s.name]
        if len(v.shape) != len(s.shape) or any(d >= 0 and d != vd for d, vd in zip(s.shape, v.shape)):
            raise InputDataError(
                f"input {s.name!r} needs shape {tuple(s.shape)}, the data has {v.shape}. Reshape the data."
            )
        if v.dtype.kind == "f" and not np.isfinite(v).all():
            raise InputDataError(f"input {s.name!r} has NaN or infinite values. Clean the data first.")
        _check_range(v, s, f"input {s.name!r}")


def _check_range(values: np.ndarray, spec: InputSpec, what: str) -> None:
    """InputDataError unless integer values index inside the table the input feeds (token ids within the vocabulary)."""
    if spec.high is None or values.dtype.kind not in "iu" or not values.size:
        return
    bad = np.flatnonzero((values < 0) | (values >= spec.high))
    if bad.size:
        at = tuple(int(i) for i in np.unravel_index(bad[0], values.shape))
        raise InputDataError(
            f"{what} holds {int(values.reshape(-1)[bad[0]])} at index {list(at)} ({bad.size} value(s) "
            f"out of range); input {spec.name!r} "
            f"indexes a table of {spec.high} rows, so valid values are 0..{spec.high - 1}. Fix the "
            "ids or the vocabulary."
        )


@dataclasses.dataclass(frozen=True)
class DataOrigin(Record):
    """What a run's input samples were: the user's .npz and how many samples, or seeded random values."""

    samples: int  # inputs fed, batch rows counted one by one
    data: str | None = None  # the .npz; None: seeded random values, each input in its spec's value_range

    def describe(self, specs: tuple[InputSpec, ...] = ()) -> str:
        """'450 samples of eval.npz' or '4 seeded random samples: image in [0, 1] (...)'."""
        if self.data is not None:
            return f"{plural(self.samples, 'sample')} of {self.data}"
        ranges = "; ".join(r for r in (s.describe_range() for s in specs) if r)
        return f"{plural(self.samples, 'seeded random sample')}" + (f": {ranges}" if ranges else "")


def draw_samples(
    specs: tuple[InputSpec, ...], data: str | None, count: int, seed: int = 0
) -> tuple[list[dict[str, np.ndarray]], DataOrigin]:
    """Every sample of an --data .npz (checked), or `count` seeded random ones; and what they were."""
    samples = random_inputs(specs, count, seed) if not data else load_npz(data, specs)
    for s in samples if data else ():
        check_sample(s, specs)
    rows = sum(next(iter(s.values())).shape[0] if s and next(iter(s.values())).ndim else 1 for s in samples)
    return samples, DataOrigin(rows, str(data) if data else None)


def samples_for(
    specs: tuple[InputSpec, ...], data: str | None, count: int = 1, seed: int = 0
) -> list[dict[str, np.ndarray]]:
    """Up to `count` samples from an --data .npz (checked), or `count` seeded random ones."""
    if not data:
        return random_inputs(specs, count, seed)
    samples = load_npz(data, specs)[:count]
    for s in samples:
        check_sample(s, specs)
    return samples


def positional_notes(path: str | Path, specs: tuple[InputSpec, ...], flag: str = "--data") -> list[str]:
    """What load_npz() matched by position, not by name: one note per such input (empty when every name matched)."""
    try:
        with zipfile.ZipFile(path) as archive:
            keys = [n[: -len(".npy")] for n in archive.namelist() if n.endswith(".npy")]
    except (OSError, zipfile.BadZipFile):
        return []  # load_npz says what is wrong with the file
    notes = []
    for i, s in enumerate(specs):
        if s.name in keys:
            continue
        key = f"arr_{i}" if f"arr_{i}" in keys else (keys[0] if len(specs) == 1 and len(keys) == 1 else None)
        if key is not None:
            notes.append(
                f"{flag} {str(path)!r}: array {key!r} was fed to input {s.name!r} by position; name it "
                f"{s.name!r} to be sure"
            )
    return notes
