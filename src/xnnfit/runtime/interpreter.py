"""The one place that builds LiteRT interpreters, feeds them and runs them.

Interpreters are resized to the pinned input specs before they allocate, so the
XNNPACK delegate (applied at the first allocation) plans the model at those shapes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from xnnfit.core.errors import RuntimeFailure, SourceError
from xnnfit.model.specs import InputSpec, dynamic_hint, input_name

_NO_WEIGHTS = "variable != nullptr"  # the READ_VARIABLE kernel's message for a variable never assigned
_UNRESOLVED = ("didn't find op", "unresolved custom op", "unsupported custom op", "op builtin_code out of range")
# What the runtime says of a file that breaks the TFLite schema (lower case): not pinned shapes or input data.
_DAMAGED = (
    "not a valid flatbuffer",
    "invalidly specified in schema",
    "invalid quantization parameters",
    "specifies out of range buffer",
    "invalid tensor index",
    "inconsistent model",
    "lacks data",
    "unsupported data type",
    "was optional but was expected",
    "key -1 not found in map",  # XNNPACK delegate's word for the same omitted input, when it prepares the node first
)
DAMAGED_HINT = "The file breaks the TFLite schema (damaged, or written by a broken exporter): re-export the model"
# What the runtime's Python API raises for a model it refuses: pybind11 turns C++ exceptions into these
# (std::out_of_range -> IndexError, std::overflow_error -> OverflowError, most others -> ValueError or RuntimeError).
RUNTIME_ERRORS = (ValueError, RuntimeError, IndexError, OverflowError)


def _text(exc: BaseException) -> str:
    """The runtime's message on one line; a bare C++ failure ('_Map_base::at') keeps its Python type."""
    text = " ".join(str(exc).split()).rstrip(".")
    return text if isinstance(exc, (ValueError, RuntimeError)) else f"{type(exc).__name__}: {text}"


def _hint(text: str, specs: Sequence[InputSpec]) -> str:
    low = text.lower()
    if any(m in low for m in _DAMAGED):
        return DAMAGED_HINT + "."
    if any(m in low for m in _UNRESOLVED):
        return (
            "The model uses an op this runtime has no kernel for: "
            "register the custom op, or convert with TFLite builtins only."
        )
    dynamic = dynamic_hint(tuple(specs))
    if dynamic:
        return dynamic + "."
    return "Run with --debug to see the runtime's log."


def build_interpreter(
    content: bytes,
    *,
    specs: Sequence[InputSpec] = (),
    shapes: Sequence[tuple[int, ...]] = (),
    xnnpack: bool = True,
    threads: int = 1,
    preserve_all_tensors: bool = False,
    node_per_delegate: bool = False,
    what: str = "the model",
) -> Any:
    """An allocated ai_edge_litert Interpreter at the specs' shapes; RuntimeFailure when the runtime refuses.

    `shapes` (input shapes in order) may stand in for `specs` where there are none (cut-out pieces).
    `xnnpack=True` is the runtime's default (XNNPACK applied as default delegate);
    `node_per_delegate=True` makes one DELEGATE node per delegated op (no fusion).
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    if threads < 1:
        raise RuntimeFailure(f"thread count {threads} is not valid. Pass --threads 1 or more.")
    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        interpreter = Interpreter(
            model_content=content,
            num_threads=threads,
            experimental_op_resolver_type=resolver,
            experimental_preserve_all_tensors=preserve_all_tensors,
            experimental_disable_delegate_node_fusion=node_per_delegate,
        )
        _resize(interpreter, [s.run_shape for s in _in_input_order(interpreter, specs)] if specs else list(shapes))
        interpreter.allocate_tensors()
    except RUNTIME_ERRORS as exc:
        text = _text(exc)
        backend = "with XNNPACK" if xnnpack else "without XNNPACK"
        raise RuntimeFailure(
            f"the LiteRT runtime cannot run {what} {backend}: {text[:300]}. {_hint(text, specs)}", detail=str(exc)
        ) from exc
    return interpreter


def compiled_fully_accelerated(content: bytes, specs: Sequence[InputSpec] = ()) -> bool | None:
    """LiteRT 2's own verdict: `CompiledModel.is_fully_accelerated()` on the CPU accelerator (XNNPACK).

    It is asked at the specs' shapes.
    None when the CompiledModel API cannot build the model (it then has nothing to say).
    """
    try:
        from ai_edge_litert import compiled_model as cm

        model = cm.CompiledModel.from_buffer(content, hardware_accel=cm.HardwareAccelerator.CPU)
        for s in specs:
            if s.run_shape and tuple(s.run_shape) != tuple(s.shape):
                model.resize_input_tensor_by_name(s.name, list(s.run_shape))
        return bool(model.is_fully_accelerated())
    except Exception:  # noqa: BLE001 - a cross-check never fails the check itself
        return None


def compiled_runner(
    content: bytes,
    specs: Sequence[InputSpec],
    sample: dict[str, np.ndarray],
    threads: int,
    weight_cache: str,
    what: str = "the model",
) -> Any:
    """A no-argument callable running LiteRT 2's CompiledModel once.

    CPU accelerator = XNNPACK, `threads`, weight cache in `weight_cache`.
    Inputs are written once; the callable runs signature 0 with them, as an app's loop does.
    """
    from ai_edge_litert import compiled_model as cm
    from ai_edge_litert.cpu_options import CpuOptions
    from ai_edge_litert.options import Options

    try:
        options = Options(
            hardware_accelerators=cm.HardwareAccelerator.CPU,
            cpu_options=CpuOptions(num_threads=threads, xnnpack_weight_cache_path=weight_cache),
        )
        model = cm.CompiledModel.from_buffer(content, options=options)
        for s in specs:
            if s.run_shape and tuple(s.run_shape) != tuple(s.shape):
                model.resize_input_tensor_by_name(s.name, list(s.run_shape))
        inputs, outputs = model.create_input_buffers(0), model.create_output_buffers(0)
        names = list(model.get_signature_by_index(0).get("inputs", []))
        values = (
            [sample[input_name(n)] for n in names]
            if names and all(input_name(n) in sample for n in names)
            else list(sample.values())
        )
        for buf, value in zip(inputs, values):
            buf.write(np.ascontiguousarray(value))
        model.run_by_index(0, inputs, outputs)
    except (*RUNTIME_ERRORS, KeyError) as exc:
        text = _text(exc)
        raise RuntimeFailure(
            f"LiteRT's CompiledModel cannot run {what}: {text[:300]}. Time it with --api interpreter.", detail=str(exc)
        ) from exc
    return lambda: model.run_by_index(0, inputs, outputs)


def _in_input_order(interpreter: Any, specs: Sequence[InputSpec]) -> list[InputSpec]:
    by_name = {s.name: s for s in specs}
    names = input_names(interpreter)
    return [by_name[n] for n in names] if set(names) == set(by_name) else list(specs)[: len(names)]


def _resize(interpreter: Any, shapes: Sequence[tuple[int, ...]]) -> None:
    for d, shape in zip(interpreter.get_input_details(), shapes):
        if tuple(d["shape"]) != tuple(shape):
            interpreter.resize_tensor_input(d["index"], tuple(shape), strict=False)


def input_names(interpreter: Any) -> list[str]:
    """The interpreter's input names, as specs and sample dicts name them."""
    return [input_name(d["name"]) for d in interpreter.get_input_details()]


def feed(interpreter: Any, sample: dict[str, np.ndarray]) -> None:
    """Set every input from `sample` (keys are input names), resizing and re-allocating if a shape differs."""
    names = input_names(interpreter)
    values = [sample[n] for n in names] if set(names) <= set(sample) else list(sample.values())[: len(names)]
    feed_values(interpreter, values)


def feed_values(
    interpreter: Any, values: Sequence[np.ndarray], what: str = "the model", hint: str = "Check the input data"
) -> None:
    """Set the inputs in order, resizing dynamic dimensions first; RuntimeFailure ending with `hint` on a refusal."""
    try:
        details = interpreter.get_input_details()
        resized = False
        for d, v in zip(details, values):
            if tuple(d["shape"]) != v.shape:
                interpreter.resize_tensor_input(d["index"], v.shape, strict=False)
                resized = True
        if resized:
            interpreter.allocate_tensors()
        for d, v in zip(interpreter.get_input_details(), values):
            interpreter.set_tensor(d["index"], v)
    except RUNTIME_ERRORS as exc:
        text = _text(exc)
        message = f"the LiteRT runtime refused the inputs of {what}: {text[:300]}. {hint}."
        raise RuntimeFailure(message, detail=str(exc)) from exc


def invoke(interpreter: Any, what: str = "the model", specs: Sequence[InputSpec] = ()) -> None:
    """Run once; RuntimeFailure with the runtime's message (and the pinned shapes, if any) when a kernel fails."""
    try:
        interpreter.invoke()
    except RUNTIME_ERRORS as exc:
        text = _text(exc)
        if _NO_WEIGHTS in text:
            raise SourceError(
                "the model holds no weights: it reads variables (READ_VARIABLE) that nothing in the file "
                "assigns, because it was "
                "converted from a concrete function without freezing. Convert it frozen: "
                "TFLiteConverter.from_keras_model(model), "
                "or convert_variables_to_constants_v2 on the concrete function first (xnnfit check "
                "model.keras does this)",
                detail=str(exc),
            ) from exc
        damaged = any(m in text.lower() for m in _DAMAGED)
        hint = DAMAGED_HINT if damaged else dynamic_hint(tuple(specs)) or "Check the input data"
        raise RuntimeFailure(f"{what} fails to run in LiteRT: {text[:300]}. {hint}.", detail=str(exc)) from exc


def read_outputs(interpreter: Any, what: str = "the model") -> list[np.ndarray]:
    """Every output, as float64 arrays for comparison."""
    details = interpreter.get_output_details()
    return [np.array(tensor_value(interpreter, d["index"], what), dtype=np.float64) for d in details]


def tensor_value(interpreter: Any, index: int, what: str = "the model") -> np.ndarray:
    """Tensor `index` of subgraph 0 after a run; RuntimeFailure when it holds no data (nothing writes it)."""
    try:
        return interpreter.get_tensor(index)
    except ValueError as exc:
        try:
            name = f" ({interpreter._get_tensor_details(index, 0)['name']!r})"
        except (ValueError, KeyError):
            name = ""
        raise RuntimeFailure(
            f"tensor {index}{name} of {what} holds no data after a run: no op writes it, "
            "and it is neither an input nor a constant. The file is damaged; re-export the model.",
            detail=str(exc),
        ) from exc


def outputs(
    content: bytes, samples: Iterable[dict[str, np.ndarray]], specs: Sequence[InputSpec] = (), *, xnnpack: bool = True
) -> list[list[np.ndarray]]:
    """Every output for every sample (XNNPACK on by default: what users run)."""
    it = build_interpreter(content, specs=specs, xnnpack=xnnpack)
    result = []
    for s in samples:
        feed(it, s)
        invoke(it, specs=specs)
        result.append(read_outputs(it))
    return result


def capture(content: bytes, sample: dict[str, np.ndarray], specs: Sequence[InputSpec] = ()) -> Any:
    """An interpreter on the built-in kernels after one run, holding every intermediate tensor."""
    it = build_interpreter(content, specs=specs, xnnpack=False, preserve_all_tensors=True)
    feed(it, sample)
    invoke(it, specs=specs)
    return it


def tensor_values(
    content: bytes, specs: Sequence[InputSpec], max_bytes: int, wanted: set[int] | None = None
) -> tuple[dict[int, tuple[int, ...]], dict[int, np.ndarray]]:
    """Static shape of every tensor of subgraph 0, and the value of those up to `max_bytes` (of `wanted`, if given).

    Both come from one run at the pinned shapes.
    Inputs are zeros: only values that do not depend on input data are meant to be used.
    Kernel temporaries the interpreter appends to the tensor list are left out.
    """
    from xnnfit.tflite.graph import read_model

    count = len(read_model(content).primary.tensors)
    it = build_interpreter(
        content, specs=specs, xnnpack=False, preserve_all_tensors=True, what="the model (shape inference)"
    )
    zeros = {d["name"]: np.zeros(d["shape"], dtype=d["dtype"]) for d in it.get_input_details()}
    feed_values(it, list(zeros.values()))
    invoke(it, "the model (shape inference)", specs)
    shapes, values = {}, {}
    for t in range(count):
        try:
            v = it.get_tensor(t)
        except ValueError:
            continue
        if v is None:
            continue
        shapes[t] = tuple(int(x) for x in v.shape)
        if v.nbytes <= max_bytes and (wanted is None or t in wanted):
            values[t] = np.array(v)
    return shapes, values


def runtime_versions() -> dict[str, str]:
    """Versions of xnnfit and the runtime packages, without importing TensorFlow."""
    from importlib import metadata

    from xnnfit.core.version import __version__

    out = {"xnnfit": __version__}
    for dist in ("ai-edge-litert", "tensorflow-cpu", "tensorflow", "keras"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out
