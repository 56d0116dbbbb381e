"""ModelSource: where a model comes from, and safe loading.

Sources: .keras/.h5/SavedModel/.tflite/file.py:fn, TFLite bytes, a Keras object.

Trusted Lambda layers get the module names their code uses (LAMBDA_NAMES). When a model's
own code fails, while loading or tracing, `describe_failure` names the layer and what it raised.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from xnnfit.core.errors import SourceError

KINDS = ("keras", "h5", "savedmodel", "tflite", "python", "object")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_MISSING_CLASS = re.compile(r"Could not locate class '([^']+)'")
ACCEPTED = "a .keras or .h5 file, a SavedModel directory, a .tflite file, or path/to/file.py:function"
# The module names Keras users write in Lambda bodies (`tf.where`, `ops.relu`, `np.float32`).
# A saved Lambda keeps only its bytecode, not the module it was written in, so a loaded
# one sees these and nothing else.
LAMBDA_NAMES = {"tf": "tensorflow", "keras": "keras", "ops": "keras.ops", "np": "numpy"}
_MESSAGE_LIMIT = 300  # characters of an error's own text kept in the one-line message: the gist, not a log
_KERAS_WRAPPER = re.compile(
    r"Exception encountered when calling [\w.]+\(\)\.\s*(.*?)\s*(Arguments received by|$)", re.S
)


@dataclasses.dataclass(frozen=True)
class ModelSource:
    """A model reference the user gave, checked to exist and classified."""

    path: Path | None  # None for in-memory models
    kind: str  # one of KINDS
    function: str | None = None  # for kind == 'python'
    trust: bool = False  # allow loading that executes code (Lambda layers)
    content: bytes | None = dataclasses.field(default=None, repr=False, compare=False)  # TFLite bytes given in memory
    model: Any = dataclasses.field(default=None, repr=False, compare=False)  # a Keras model given in memory
    name: str | None = None  # display name of an in-memory model

    @property
    def display(self) -> str:
        """The reference as the user wrote it."""
        if self.path is None:
            return self.name or "<model>"
        return f"{self.path}:{self.function}" if self.function else str(self.path)

    @property
    def is_tflite(self) -> bool:
        """True for a ready .tflite, on disk or in memory (no TensorFlow needed)."""
        return self.kind == "tflite"

    @classmethod
    def of(cls, model: Any, *, trust: bool = False) -> ModelSource:
        """A source from what API users pass: a path (str or Path), TFLite bytes, or a Keras model object."""
        if isinstance(model, ModelSource):
            return model
        if isinstance(model, (str, Path)):
            return cls.parse(str(model), trust=trust)
        if isinstance(model, (bytes, bytearray, memoryview)):
            return cls(path=None, kind="tflite", content=bytes(model), name="<tflite bytes>")
        if hasattr(model, "layers") and callable(model):
            return cls(
                path=None,
                kind="object",
                model=model,
                trust=True,
                name=f"<keras model {getattr(model, 'name', '')}>".replace(" >", ">"),
            )
        raise SourceError(
            f"cannot use a {type(model).__name__} as a model. Pass a path, TFLite bytes, or a Keras model."
        )

    @classmethod
    def parse(cls, text: str, *, trust: bool = False) -> ModelSource:
        """Classify `text`; SourceError says what was received and what is accepted."""
        function = None
        if ".py:" in text:
            file_part, function = text.rsplit(":", 1)
            if not function.isidentifier():
                raise SourceError(
                    f"cannot use {text!r}: {function!r} is not a Python function name. Write file.py:build_model."
                )
            path = Path(file_part)
            kind = "python"
        else:
            path = Path(text)
            if path.suffix == ".py":
                raise SourceError(
                    f"cannot use {text!r}: name the function that returns the model, e.g. {text}:build_model."
                )
            kind = {".keras": "keras", ".h5": "h5", ".hdf5": "h5", ".tflite": "tflite", ".lite": "tflite"}.get(
                path.suffix.lower(), ""
            )
        if not path.exists():
            raise SourceError(f"cannot read {str(path)!r}: no such file or directory. Check the path.")
        if path.is_dir():
            if not (path / "saved_model.pb").exists():
                raise SourceError(
                    f"cannot read {str(path)!r}: a directory but not a SavedModel (no saved_model.pb). Pass {ACCEPTED}."
                )
            kind = "savedmodel"
        elif not kind:
            raise SourceError(f"cannot tell what {str(path)!r} is from its extension. Pass {ACCEPTED}.")
        elif path.stat().st_size == 0:
            raise SourceError(f"cannot read {str(path)!r}: the file is empty. Pass {ACCEPTED}.")
        return cls(path=path, kind=kind, function=function, trust=trust)

    def read_bytes(self) -> bytes:
        """The .tflite's bytes (from memory or the file)."""
        if self.content is not None:
            return self.content
        if self.path is None:
            raise SourceError(f"{self.display} is not a .tflite. Pass TFLite bytes or a .tflite path.")
        try:
            return self.path.read_bytes()
        except OSError as exc:
            raise SourceError(f"cannot read {str(self.path)!r}: {exc.strerror}. Check the file's permissions.") from exc

    def load(self) -> Any:
        """The Keras model (Keras 3 or tf_keras), or a TF SavedModel object for plain SavedModels.

        Imports TensorFlow: call it in a child process.
        """
        if self.model is not None:
            return self.model
        if self.kind == "python":
            return _load_python(self)
        if self.kind in ("keras", "h5"):
            return _load_keras_file(self)
        if self.kind == "savedmodel":
            return _load_savedmodel(self)
        raise SourceError(
            f"{self.display!r} is a .tflite: it has no Keras model to load. Pass the Keras model to convert it again."
        )


def _trust_hint(src: ModelSource) -> str:
    return (
        f"loading {str(src.path)!r} would run Python code stored in the file (a Lambda layer); "
        "Keras safe mode refused it. If you trust the file, pass --trust-model; or pass "
        "file.py:function that builds the model."
    )


def _load_python(src: ModelSource) -> Any:
    name = f"xnnfit_user_{abs(hash(str(src.path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, src.path)
    if spec is None or spec.loader is None:
        raise SourceError(f"cannot import {str(src.path)!r} as Python. Pass a .py file.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(src.path.parent.resolve()))
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise SourceError(
            f"importing {str(src.path)!r} failed: {type(exc).__name__}: {error_text(exc)}. Fix the file and retry."
        ) from exc
    fn = getattr(module, src.function or "", None)
    if not callable(fn):
        found = [
            k
            for k, v in vars(module).items()
            if callable(v) and not k.startswith("_") and getattr(v, "__module__", "") == name
        ]
        raise SourceError(
            f"{str(src.path)!r} has no function {src.function!r}. Functions defined there: "
            f"{', '.join(found) or 'none'}."
        )
    try:
        # Seed Keras/TF/NumPy so every child process that builds this model gets the same
        # weights (recipes are converted in separate processes and compared with each other).
        import keras

        keras.utils.set_random_seed(0)
        model = fn()
    except Exception as exc:
        what = (
            f": {describe_failure(exc)}"
            if raising_layer(exc) is not None
            else f" raised {type(exc).__name__}: {error_text(exc)}"
        )
        raise SourceError(f"{src.display}{what}. Fix the function and retry.") from exc
    if not hasattr(model, "layers") or not callable(model):
        raise SourceError(f"{src.display} returned {type(model).__name__}, not a Keras model. Return a keras.Model.")
    return model


def _is_safe_mode_error(exc: Exception) -> bool:
    text = str(exc)
    return "safe_mode" in text or "unsafe" in text.lower() and "lambda" in text.lower()


def _load_keras_file(src: ModelSource) -> Any:
    import keras

    failures = []
    try:
        with lambda_names(keras.layers.Lambda, lambda_globals(keras)):
            return keras.saving.load_model(src.path, compile=False, safe_mode=not src.trust)
    except Exception as exc:  # noqa: BLE001 - any loader failure gets one clear line
        if _is_safe_mode_error(exc):
            raise SourceError(_trust_hint(src)) from exc
        failures.append(exc)
    tf_keras = _try_import_tf_keras()
    if tf_keras is not None:
        try:
            with lambda_names(tf_keras.layers.Lambda, lambda_globals(tf_keras)):
                return tf_keras.models.load_model(src.path, compile=False, safe_mode=not src.trust)
        except Exception as exc:  # noqa: BLE001
            if _is_safe_mode_error(exc):
                raise SourceError(_trust_hint(src)) from exc
            failures.append(exc)
    raise _load_error(src, failures) from failures[0]


def _load_error(src: ModelSource, failures: list[Exception]) -> SourceError:
    """One line for a Keras file neither Keras loads.

    It says what a layer's code raised, the custom class it lacks, or Keras' message.
    `failures` holds Keras 3's error, then tf_keras'; a layer that raised while one of
    them rebuilt the model is the real cause (the other Keras just does not read the format).
    """
    raised = next((exc for exc in failures if raising_layer(exc) is not None), None)
    if raised is not None:
        return SourceError(
            f"cannot load {str(src.path)!r}: while Keras rebuilt the model, "
            f"{describe_failure(raised)}. {code_fix(raised)}"
        )
    first = failures[0]
    full = " ".join(_ANSI.sub("", str(first)).split())
    missing = _MISSING_CLASS.search(full)
    if missing:
        return SourceError(
            f"cannot load {str(src.path)!r}: it uses custom class {missing.group(1)!r}, which Keras "
            "cannot find without its code. "
            "Pass path/to/file.py:function that builds the model instead."
        )
    if "Lambda" in full:
        return SourceError(
            f"cannot load {str(src.path)!r}: Keras failed to rebuild a Lambda layer ({error_text(first)}). "
            "Pass path/to/file.py:function that builds the model instead."
        )
    return SourceError(
        f"cannot load {str(src.path)!r} as a Keras model: {full[:_MESSAGE_LIMIT]}. Check that the "
        "file is a complete Keras save."
    )


def _try_import_tf_keras() -> Any:
    try:
        import tf_keras
    except ImportError:
        return None
    return tf_keras


def _load_savedmodel(src: ModelSource) -> Any:
    if (src.path / "keras_metadata.pb").exists():
        tf_keras = _try_import_tf_keras()
        if tf_keras is not None:
            try:
                return tf_keras.models.load_model(src.path, compile=False)
            except Exception:  # noqa: BLE001 - fall back to the plain SavedModel
                pass
    import tensorflow as tf

    try:
        return tf.saved_model.load(str(src.path))
    except Exception as exc:  # noqa: BLE001
        text = " ".join(str(exc).split())[:300]
        raise SourceError(
            f"cannot load SavedModel {str(src.path)!r}: {text}. Re-export it with tf.saved_model.save."
        ) from exc


def lambda_globals(keras_module: Any) -> dict[str, Any]:
    """LAMBDA_NAMES as modules, with `keras` the Keras that loads the file (Keras 3 or tf_keras)."""
    names = {name: importlib.import_module(module) for name, module in LAMBDA_NAMES.items()}
    names["keras"] = keras_module
    return names


@contextlib.contextmanager
def lambda_names(lambda_cls: type, names: dict[str, Any]) -> Iterator[None]:
    """While loading, give every `lambda_cls` layer rebuilt from saved bytecode `names` as globals.

    Keras 3 rebuilds a saved lambda with Keras' own module globals and ignores
    `custom_objects` for it; tf_keras adds `custom_objects` to .h5 lambdas but not to
    .keras ones. So each rebuilt layer's functions are re-created here with `names`
    added, right after `from_config` and before Keras calls the layer to infer its shapes.
    """
    original = lambda_cls.__dict__.get("from_config")
    if not isinstance(original, classmethod):  # another Keras: load as it does
        yield
        return

    def from_config(klass: type, config: dict, *args: Any, **kwargs: Any) -> Any:
        layer = original.__func__(klass, config, *args, **kwargs)
        for attr in ("function", "_output_shape", "mask"):
            fn = getattr(layer, attr, None)
            if isinstance(fn, types.FunctionType) and fn.__name__ == "<lambda>":
                setattr(layer, attr, _with_globals(fn, names))
        return layer

    lambda_cls.from_config = classmethod(from_config)
    try:
        yield
    finally:
        lambda_cls.from_config = original


def _with_globals(fn: types.FunctionType, names: dict[str, Any]) -> types.FunctionType:
    """`fn` re-created with `names` added to its globals, and in its closure where the saved value is no module.

    A lambda written inside a function closes over that function's `tf`; Keras saves the
    module as a plain config dict, so those cells get the module back.
    """
    cells = fn.__closure__
    if cells:
        cells = tuple(_module_cell(var, cell, names) for var, cell in zip(fn.__code__.co_freevars, cells))
    return types.FunctionType(fn.__code__, {**names, **fn.__globals__}, fn.__name__, fn.__defaults__, cells)


def _module_cell(var: str, cell: Any, names: dict[str, Any]) -> Any:
    """A new cell holding module `names[var]` when the saved cell holds something else, else `cell`."""
    try:
        value = cell.cell_contents
    except ValueError:  # an empty cell
        return cell
    return types.CellType(names[var]) if var in names and not isinstance(value, types.ModuleType) else cell


def root_cause(exc: BaseException) -> BaseException:
    """The first exception in the chain: what the model's code raised before Keras and TensorFlow wrapped it."""
    return _chain_from_root(exc)[0]


def raising_layer(exc: BaseException) -> Any:
    """The innermost Keras layer running when `exc` (or what it wraps) was raised, or None."""
    for link in _chain_from_root(exc):
        frames = []
        tb = link.__traceback__
        while tb is not None:
            frames.append(tb.tb_frame)
            tb = tb.tb_next
        for frame in reversed(frames):
            candidate = frame.f_locals.get("self")
            if _is_layer(candidate):
                return candidate
    return None


def _chain_from_root(exc: BaseException) -> list[BaseException]:
    chain = [exc]
    while True:
        nxt = chain[-1].__cause__ or chain[-1].__context__
        if nxt is None or nxt in chain:
            return chain[::-1]
        chain.append(nxt)


def _is_layer(obj: Any) -> bool:
    return obj is not None and any(
        c.__name__ == "Layer" and c.__module__.startswith(("keras", "tf_keras")) for c in type(obj).__mro__
    )


def describe_failure(exc: BaseException) -> str:
    """Who raised what, in one line: "Lambda layer 'scale' raised NameError: name 'foo' is not defined"."""
    root = root_cause(exc)
    layer = raising_layer(exc)
    if layer is None:
        who = "the model"
    elif hasattr(layer, "layers"):
        who = f"model {layer.name!r}"
    else:
        who = f"{type(layer).__name__} layer {layer.name!r}"
    return f"{who} raised {type(root).__name__}: {error_text(root)}"


def error_text(exc: BaseException) -> str:
    """An exception's message on one line: no ANSI codes, no Keras call wrapper, at most _MESSAGE_LIMIT characters."""
    text = _ANSI.sub("", str(exc))
    wrapped = _KERAS_WRAPPER.search(text)
    if wrapped:
        text = wrapped.group(1)
    text = " ".join(text.split()).rstrip(".")
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"


def code_fix(exc: BaseException) -> str:
    """What to do about an error the model's own code raised."""
    if isinstance(root_cause(exc), NameError) and _rebuilt_lambda(raising_layer(exc)):
        return (
            f"A Lambda layer loaded from a file can use only the globals {_lambda_names_text()}: "
            "use only those in its code, or pass path/to/file.py:function that builds the model."
        )
    return "Fix that code and retry."


def _rebuilt_lambda(layer: Any) -> bool:
    """True for a Lambda rebuilt from saved bytecode: its function's globals are a made-up namespace, not a module's."""
    fn = getattr(layer, "function", None)
    if type(layer).__name__ != "Lambda" or not isinstance(fn, types.FunctionType):
        return False
    module = sys.modules.get(fn.__module__ or "")
    return module is None or vars(module) is not fn.__globals__


def _lambda_names_text() -> str:
    """'tf (tensorflow), keras, ops (keras.ops), np (numpy)'."""
    return ", ".join(name if name == module else f"{name} ({module})" for name, module in LAMBDA_NAMES.items())
