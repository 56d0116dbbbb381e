"""convert_model(model, recipe) -> Artifact: the real TFLite converter.

It imports TensorFlow; runner.py runs it in a child.

Keras models are traced at the pinned input specs (specs.py: batch 1 unless told otherwise,
unknown sequence lengths within the model's own limits), their variables frozen into
constants, then converted from the concrete function; this works for dict inputs
(keras-hub backbones) where `from_keras_model` fails. SELECT_TF_OPS is never enabled: an
op that needs Flex is a ConversionError naming the op and its layer. A failure says what
the model raised, and the pinned shapes when they may be the cause.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from xnnfit.core.errors import ConversionError, XnnfitError
from xnnfit.core.policy import CALIBRATION_SAMPLES, SAVEDMODEL_ROUTE_BYTES
from xnnfit.model.artifact import Artifact
from xnnfit.model.footprint import refuse_samples
from xnnfit.model.inputs import load_npz, random_inputs
from xnnfit.model.keras import children, describe_layers, layer_for_scope, walk
from xnnfit.model.ranges import Decided, Given, layer_range, with_ranges
from xnnfit.model.recipes import ConversionRecipe
from xnnfit.model.source import code_fix, describe_failure, error_text, root_cause
from xnnfit.model.specs import DimLimit, InputSpec, ShapeRequest, dynamic_hint

SEQUENCE_AXIS = 1  # Keras inputs are (batch, sequence, ...): the axis a layer's sequence_length bounds
LIMIT_ATTRIBUTES = ("max_sequence_length", "sequence_length")  # keras-hub backbones and position embeddings
POSITION_TABLE = "position"  # an Embedding named like this is a position table: its input_dim bounds the sequence
# Errors of the model's own code: never about the shapes it was traced at.
_CODE_ERRORS = (NameError, AttributeError, ImportError, SyntaxError, AssertionError)
_SHAPE_WORDS = re.compile(r"shape|dimension|rank|size|begin\[|out of (range|bounds)|incompatible", re.I)


@dataclasses.dataclass(frozen=True)
class ConvertOptions:
    """What every recipe of one model is converted with: shapes, calibration data, the seed for random data."""

    shapes: ShapeRequest = ShapeRequest()
    calibration: str | None = None
    seed: int = 0
    route: str = "auto"  # 'function' (concrete function), 'savedmodel' (exported first), 'auto': by model size
    input_ranges: Given = ()  # --input-range (model/ranges.parse_input_ranges)


def framework_of(model: Any) -> str:
    """'keras3', 'tf_keras' or 'savedmodel' for a loaded model object."""
    module = type(model).__module__
    if module.startswith("keras"):
        return "keras3"
    if module.startswith("tf_keras") or ".keras." in module:
        return "tf_keras"
    return "keras3" if hasattr(model, "layers") and hasattr(model, "inputs") else "savedmodel"


def convert_model(
    model: Any, recipe: ConversionRecipe, options: ConvertOptions = ConvertOptions(), *, display: str = "the model"
) -> Artifact:
    """Convert an in-memory Keras model (or TF SavedModel object) with `recipe`, in this process."""
    with prepared(model, recipe, options, display=display) as p:
        try:
            content = bytes(_selective(p) if recipe.float_ops or recipe.float_nodes else p.converter.convert())
        except Exception as exc:  # noqa: BLE001 - ConverterError and friends
            raise p.error(exc) from exc
    return Artifact(
        recipe.name, content, p.specs, p.layers, p.framework, tuple(p.warnings), f"{display} ({recipe.name})"
    )


@dataclasses.dataclass
class Prepared:
    """A TFLite converter configured for one recipe, with what the conversion and its error messages need."""

    converter: Any
    recipe: ConversionRecipe
    specs: tuple[InputSpec, ...]
    layers: tuple
    framework: str
    warnings: list[str]
    calibration: list[dict]  # the representative samples (empty unless the recipe calibrates)
    dataset: Callable[[], Any]  # the representative-dataset generator factory
    error: Callable[[Exception], XnnfitError]  # a converter exception as one line naming the op and the layer


@contextlib.contextmanager
def prepared(
    model: Any, recipe: ConversionRecipe, options: ConvertOptions = ConvertOptions(), *, display: str = "the model"
) -> Iterator[Prepared]:
    """The converter of `model` for `recipe`, traced at the pinned specs; valid inside the `with` block only.

    A SavedModel-route converter reads its export folder, which the block removes when it ends.
    """
    framework = framework_of(model)
    warnings: list[str] = []
    layers = describe_layers(model) if framework != "savedmodel" else ()
    fn, struct, specs = _traced_function(model, framework, options, warnings, layers)
    try:
        concrete = fn.get_concrete_function(*struct)
    except Exception as exc:  # noqa: BLE001 - tracing failures are the model's, say so in one line
        raise _trace_error(exc, specs, display, warnings) from exc
    route = options.route if options.route != "auto" else _route(model, framework)
    with tempfile.TemporaryDirectory(prefix="xnnfit-export-") as folder:
        if route == "savedmodel":
            converter = _from_saved_model(model, framework, struct[0], specs, folder)
        else:
            converter = _from_function(concrete)
        samples, dataset = _configure(converter, recipe, specs, options, warnings, by_name=route == "savedmodel")
        yield Prepared(
            converter,
            recipe,
            specs,
            layers,
            framework,
            warnings,
            samples,
            dataset,
            lambda exc: _conversion_error(exc, concrete, layers, framework, recipe, display, specs, warnings),
        )


def _weight_bytes(model: Any) -> int:
    total = 0
    for w in getattr(model, "weights", None) or []:
        try:
            total += int(np.prod(tuple(w.shape))) * np.dtype(str(getattr(w.dtype, "name", w.dtype))).itemsize
        except (TypeError, ValueError):
            continue
    return total


def _route(model: Any, framework: str) -> str:
    """'savedmodel' for big Keras models (the converter's lean path), 'function' otherwise (no disk round trip)."""
    return "savedmodel" if framework != "savedmodel" and _weight_bytes(model) >= SAVEDMODEL_ROUTE_BYTES else "function"


def _from_function(concrete: Any) -> Any:
    import tensorflow as tf

    # The converter freezes the function itself and keeps the original op stack traces.
    # Freezing it here too would hold a second copy of every weight; only the Flex error
    # path freezes, to find the ops' layers.
    return tf.lite.TFLiteConverter.from_concrete_functions([concrete])


def _from_saved_model(model: Any, framework: str, structure: Any, specs: tuple[InputSpec, ...], folder: str) -> Any:
    """A converter over the model exported as a SavedModel, one signature taking the inputs by name (specs order)."""
    import tensorflow as tf

    signature = [tf.TensorSpec(_tf_shape(s.shape), s.dtype, name=s.name) for s in specs]

    def serve(*args):
        return model(tf.nest.pack_sequence_as(structure, list(args)), training=False)

    save = tf.saved_model.SaveOptions(save_debug_info=True)  # the op stack traces the mapping reads
    if framework == "keras3":
        import keras

        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serving_default", serve, input_signature=signature)
        archive.write_out(folder, options=save, verbose=False)
    else:
        tf.saved_model.save(model, folder, signatures=tf.function(serve, input_signature=signature), options=save)
    return tf.lite.TFLiteConverter.from_saved_model(folder)


def _configure(
    converter: Any, recipe: ConversionRecipe, specs, options: ConvertOptions, warnings: list[str], *, by_name: bool
) -> tuple[list[dict], Callable[[], Any]]:
    """Set the converter up for `recipe` (calibration data by input name for a SavedModel).

    Returns the representative samples and their dataset factory.
    """
    import tensorflow as tf

    # The converter's debug metadata names the Keras layer and source line of float nodes. With it, the quantizer
    # ignores QuantizationDebugOptions(denylisted_nodes=...) (measured on TF 2.21: the nodes stay int8), so a recipe
    # that keeps nodes in float goes without it; quantized models carry no debug metadata anyway (observe/mapping).
    converter.serialize_debug_metadata = not recipe.float_nodes
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if recipe.optimize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if recipe.float16:
        converter.target_spec.supported_types = [tf.float16]
    samples, order = [], [s.name for s in specs]
    if recipe.calibrate:
        samples = _calibration(specs, options, warnings)
        converter.representative_dataset = _dataset(samples, order, by_name)
        if recipe.ops == "int8":
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        elif recipe.ops == "int16x8":
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
            ]
    return samples, _dataset(samples, order, by_name)


def _dataset(samples: list[dict], order: list[str], by_name: bool):
    """A representative-dataset generator: inputs in order for a function, by name for a SavedModel signature."""
    if by_name:
        return lambda: (dict(s) for s in samples)
    return lambda: ([s[n] for n in order] for s in samples)


def _selective(p: Prepared) -> bytes:
    """Full-integer conversion with the recipe's float ops and nodes kept in float (the TF quantization debugger's
    denylists)."""
    debugger = quantization_debugger(p, p.dataset)
    return debugger.get_nondebug_quantized_model()


def quantization_debugger(p: Prepared, data: Callable[[], Any], **metrics: Any) -> Any:
    """TF's QuantizationDebugger over `p`'s converter (it calibrates), the recipe's float ops and nodes denylisted.

    `metrics` are QuantizationDebugOptions metric arguments; `data` the debug dataset factory.
    """
    import tensorflow as tf

    recipe = p.recipe
    if recipe.float_ops or recipe.float_nodes:
        p.converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
            tf.lite.OpsSet.TFLITE_BUILTINS,
        ]
    options = tf.lite.experimental.QuantizationDebugOptions(
        denylisted_ops=list(recipe.float_ops) or None, denylisted_nodes=list(recipe.float_nodes) or None, **metrics
    )
    return tf.lite.experimental.QuantizationDebugger(converter=p.converter, debug_dataset=data, debug_options=options)


def _shapes_text(specs: tuple[InputSpec, ...]) -> str:
    return ", ".join(f"{s.name}={'x'.join(str(d) for d in s.shape)}" for s in specs)


def _trace_error(exc: Exception, specs: tuple[InputSpec, ...], display: str, warnings: list[str]) -> ConversionError:
    """One line for a model that fails to trace: what raised what, the pinned shapes only if shapes are the problem."""
    cause = describe_failure(exc)
    detail = "\n".join([*warnings, str(exc)])
    root = root_cause(exc)
    if isinstance(root, _CODE_ERRORS) or not _SHAPE_WORDS.search(error_text(root)):
        return ConversionError(f"cannot trace {display}: {cause}. {code_fix(exc)}", detail=detail)
    hint = dynamic_hint(specs)
    if hint:
        return ConversionError(f"cannot trace {display} at the pinned input shapes: {cause}. {hint}.", detail=detail)
    return ConversionError(
        f"cannot trace {display} at its declared input shape(s) {_shapes_text(specs)}: {cause}. "
        "Fix the model so its layers accept the inputs it declares.",
        detail=detail,
    )


def model_limits(model: Any, input_names: dict[int, str] | None = None) -> tuple[DimLimit, ...]:
    """The sequence lengths the model and its layers declare they accept at most, and which inputs each bounds.

    A layer (or the model) with an int `max_sequence_length` or `sequence_length`
    (keras-hub backbones, PositionEmbedding), or an Embedding named like a position table
    (its `input_dim`), bounds axis SEQUENCE_AXIS. A limit of the model itself bounds every
    input; a layer's bounds the inputs that reach the top-level layer holding it
    (`input_names`: id(input tensor) -> name), or every input when that is unknown.
    """
    names = input_names or {}
    limits = list(_limits_of(model, ()))
    for top in children(model):
        reach = tuple(sorted(_reaching(top, names))) if names else ()
        for layer in walk(top):
            limits.extend(_limits_of(layer, reach))
    return tuple(limits)


def _limits_of(layer: Any, inputs: tuple[str, ...]) -> list[DimLimit]:
    name = str(getattr(layer, "name", "") or "")
    out = [
        DimLimit(SEQUENCE_AXIS, size, attr, name, inputs)
        for attr in LIMIT_ATTRIBUTES
        if (size := _int_attribute(layer, attr))
    ]
    if (
        type(layer).__name__ == "Embedding"
        and POSITION_TABLE in name.lower()
        and (size := _int_attribute(layer, "input_dim"))
    ):
        out.append(DimLimit(SEQUENCE_AXIS, size, "input_dim", name, inputs))
    return out


def _reaching(layer: Any, names: dict[int, str]) -> set[str]:
    """Names of the model inputs the functional graph carries into `layer` (Keras nodes, walked backwards)."""
    found: set[str] = set()
    stack, seen = list(getattr(layer, "_inbound_nodes", None) or []), set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        for t in _flat(getattr(node, "input_tensors", None)):
            if id(t) in names:
                found.add(names[id(t)])
                continue
            history = getattr(t, "_keras_history", None)
            op = getattr(history, "operation", None) or getattr(history, "layer", None)  # Keras 3 / tf_keras
            nodes = list(getattr(op, "_inbound_nodes", None) or [])
            index = getattr(history, "node_index", 0)
            if index < len(nodes):
                stack.append(nodes[index])
    return found


def _flat(tensors: Any) -> list[Any]:
    """A node's input tensors as a list: tf_keras gives one tensor bare, Keras 3 a list.

    Never truth-tested: symbolic tensors raise.
    """
    if tensors is None:
        return []
    if isinstance(tensors, dict):
        return [t for v in tensors.values() for t in _flat(v)]
    if isinstance(tensors, (list, tuple)):
        return [t for v in tensors for t in _flat(v)]
    return [tensors]


def _int_attribute(obj: Any, attr: str) -> int | None:
    """`obj.attr` when it is a positive int (not a bool), else None; a property that raises counts as absent."""
    try:
        value = getattr(obj, attr, None)
    except Exception:  # noqa: BLE001 - a layer's property may raise before it is built
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _input_vocabularies(model: Any) -> dict[int, int]:
    """id(input tensor) -> rows of the smallest Embedding-like layer (int `input_dim`) that reads that input directly.

    Only direct readers count: an input that reaches a table through other layers gets
    its range later, from the converted graph (specs.with_table_bounds).
    """
    out: dict[int, int] = {}
    for layer in walk(model):
        dim = getattr(layer, "input_dim", None)
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 2:
            continue
        for node in list(getattr(layer, "_inbound_nodes", None) or []):
            for t in _flat(getattr(node, "input_tensors", None)):
                out[id(t)] = min(dim, out.get(id(t), dim))
    return out


def input_layer_ranges(model: Any, input_names: dict[int, str]) -> dict[str, Decided]:
    """Input name -> the raw range the Keras preprocessing layer right after it expects (ranges.layer_range).

    `input_names`: id(input tensor) -> name. An input feeding a nested model is followed
    into it (its own input's first layers).
    """
    out: dict[str, Decided] = {}
    for layer in walk(model):
        for node in list(getattr(layer, "_inbound_nodes", None) or []):
            for t in _flat(getattr(node, "input_tensors", None)):
                name = input_names.get(id(t))
                if name is None or name in out:
                    continue
                found = layer_range(layer) or _nested_range(layer)
                if found is not None:
                    out[name] = found
    return out


def _nested_range(layer: Any) -> Decided | None:
    """The range a nested single-input model's own first layers expect."""
    try:
        inputs = list(getattr(layer, "inputs", None) or [])
    except (AttributeError, ValueError):  # a plain layer's `inputs` may raise outside a functional graph
        return None
    if len(inputs) != 1 or not getattr(layer, "layers", None):
        return None
    return input_layer_ranges(layer, {id(inputs[0]): "input"}).get("input")


def _traced_function(model: Any, framework: str, options: ConvertOptions, warnings: list[str], layers):
    """The tf.function to convert, its input signature structure, and the pinned input specs."""
    import tensorflow as tf

    vocabularies = _input_vocabularies(model) if framework != "savedmodel" else {}
    limits_of = (lambda names: model_limits(model, names)) if framework != "savedmodel" else (lambda names: ())
    ranges_of = (lambda names: input_layer_ranges(model, names)) if framework != "savedmodel" else (lambda names: {})

    def declared(
        name: str, shape: tuple, dtype: Any, tensor: Any = None
    ) -> tuple[str, tuple[int, ...], str, int | None]:
        dtype_name = tf.as_dtype(dtype).name
        high = vocabularies.get(id(tensor)) if dtype_name.startswith(("int", "uint")) else None
        return name, tuple(-1 if d is None else int(d) for d in shape), dtype_name, high

    def pin(leaves: list[tuple]) -> dict[str, InputSpec]:
        names = {id(leaf[3]): leaf[0] for leaf in leaves if len(leaf) > 3}
        specs, notes = options.shapes.pin_all([declared(*leaf) for leaf in leaves], limits=limits_of(names))
        specs = with_ranges(specs, options.input_ranges, keras=ranges_of(names))
        warnings.extend(n for n in notes if n not in warnings)
        return {s.name: s for s in specs}

    def tspec(spec: InputSpec) -> Any:
        return tf.TensorSpec(_tf_shape(spec.shape), spec.dtype, name=spec.name)

    if framework == "savedmodel":
        sig = model.signatures.get("serving_default") or next(iter(model.signatures.values()), None)
        if sig is None:
            raise XnnfitError("the SavedModel has no signature to convert. Export it with a serving signature.")
        _, kw = sig.structured_input_signature
        pinned = pin([(k, tuple(v.shape), v.dtype) for k, v in sorted(kw.items())])
        fn = tf.function(lambda d: sig(**d))
        return fn, ({k: tspec(v) for k, v in pinned.items()},), tuple(pinned.values())

    try:
        struct = model.input
    except (AttributeError, ValueError):  # Keras 3 Sequential has no .input; its .inputs works
        inputs = getattr(model, "inputs", None) or None
        struct = inputs[0] if inputs and len(inputs) == 1 else inputs
    if struct is None:
        raise XnnfitError(
            "the model has no defined inputs. Build it (call it once or give it an Input) before checking."
        )

    def name_of(t: Any, i: int) -> str:
        return str(getattr(t, "name", None) or f"input_{i}").split(":")[0]

    if isinstance(struct, dict):
        pinned = pin([(str(k), tuple(t.shape), t.dtype, t) for k, t in struct.items()])
        spec_struct: Any = {k: tspec(pinned[str(k)]) for k in struct}
        flat = [pinned[str(k)] for k in sorted(struct, key=str)]  # tf.nest flattens dicts by sorted key
    elif isinstance(struct, (list, tuple)):
        names = [name_of(t, i) for i, t in enumerate(struct)]
        pinned = pin([(n, tuple(t.shape), t.dtype, t) for n, t in zip(names, struct)])
        spec_struct = [tspec(pinned[n]) for n in names]
        flat = [pinned[n] for n in names]
    else:
        name = name_of(struct, 0)
        pinned = pin([(name, tuple(struct.shape), struct.dtype, struct)])
        spec_struct, flat = tspec(pinned[name]), [pinned[name]]
    fn = tf.function(lambda x: model(x, training=False))
    return fn, (spec_struct,), tuple(flat)


def _tf_shape(shape: tuple[int, ...]) -> list:
    return [None if d < 0 else d for d in shape]


def _calibration(specs: tuple[InputSpec, ...], options: ConvertOptions, warnings: list[str]) -> list[dict]:
    """Representative samples: --calibration data, else seeded random data (with a warning)."""
    if options.calibration:
        return load_npz(options.calibration, specs)
    refuse_samples(specs, CALIBRATION_SAMPLES, "calibrating with random data")
    warnings.append(
        f"no --calibration data: calibrated with {CALIBRATION_SAMPLES} samples of seeded random data; "
        "quantization ranges (and accuracy) are only indicative"
    )
    return random_inputs(specs, CALIBRATION_SAMPLES, seed=options.seed)


_FLEX_LINE = re.compile(r"TF Select ops: ([^\n]+)")
_UNSUPPORTED = re.compile(r"'tf\.(\w+)' op is neither a custom op nor a flex op")


def flex_ops_in(message: str) -> list[str]:
    """TF op types the converter says need Flex (SELECT_TF_OPS)."""
    ops = []
    m = _FLEX_LINE.search(message)
    if m:
        ops.extend(o.strip() for o in m.group(1).split(",") if o.strip())
    ops.extend(_UNSUPPORTED.findall(message))
    return list(dict.fromkeys(ops))


def _conversion_error(
    exc: Exception,
    concrete: Any,
    layers,
    framework: str,
    recipe: ConversionRecipe,
    display: str,
    specs: tuple[InputSpec, ...] = (),
    warnings: Sequence[str] = (),
) -> XnnfitError:
    text = str(exc)
    flex = flex_ops_in(text)
    if flex:
        from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

        where = []
        for op in convert_variables_to_constants_v2(concrete).graph.get_operations():  # inlined: every op, every layer
            if op.type in flex:
                layer = layer_for_scope(op.name, layers, framework)
                label = (
                    f"layer {layer.name!r} ({layer.class_name}{', ' + layer.source if layer.source else ''})"
                    if layer
                    else f"scope {op.name.rsplit('/', 1)[0]!r}"
                )
                where.append(f"tf.{op.type} in {label}")
        where_text = "; ".join(dict.fromkeys(where)) or ", ".join(f"tf.{o}" for o in flex)
        return ConversionError(
            f"{display} ({recipe.name}) uses TensorFlow ops with no TFLite builtin: {where_text}. "
            "They would need Flex (SELECT_TF_OPS), which XNNPACK never runs and xnnfit does not enable; "
            "rewrite them with builtin ops (see `xnnfit explain XNN019`).",
            detail=text,
        )
    first = _first_error(text) or type(exc).__name__
    if recipe.ops in ("int8", "int16x8") and ("quantiz" in text.lower() or "int8" in text.lower()):
        hint = f"the {recipe.name} recipe needs every op to have a quantized kernel; try dynamic-int8 or fp16"
    elif _pinned_beyond_batch(specs):
        hint = f"{dynamic_hint(specs)}; run with --debug for the converter's full message"
    else:
        hint = "run with --debug for the converter's full message"
    detail = "\n".join([*warnings, text])
    return ConversionError(
        f"the TFLite converter refused {display} ({recipe.name}): {first[:_FIRST_LIMIT]}. {hint}.", detail=detail
    )


_FIRST_LIMIT = 300  # characters of the converter's first error line kept: the op and its complaint
_MLIR_ERROR = re.compile(r"\berror: (.*)")


def _first_error(text: str) -> str:
    """The converter's first 'error:' message without its source location, else its first line."""
    for line in text.splitlines():
        m = _MLIR_ERROR.search(line)
        if m:
            return m.group(1).strip().rstrip(".")
    lines = text.strip().splitlines()
    return lines[0].strip().rstrip(".") if lines else ""


def _pinned_beyond_batch(specs: tuple[InputSpec, ...]) -> bool:
    """True when a dimension other than the batch was pinned: the converter may have refused that size."""
    return any(p.axis > 0 for s in specs for p in s.pins)
