"""ModelSource: where a model comes from (.keras/.h5/SavedModel/.tflite/file.py:fn, TFLite bytes, a Keras object) and safe loading."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

from xnnfit.errors import SourceError

KINDS = ("keras", "h5", "savedmodel", "tflite", "python", "object")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_MISSING_CLASS = re.compile(r"Could not locate class '([^']+)'")
ACCEPTED = "a .keras or .h5 file, a SavedModel directory, a .tflite file, or path/to/file.py:function"


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
    def of(cls, model: Any, *, trust: bool = False) -> "ModelSource":
        """A source from what API users pass: a path (str or Path), TFLite bytes, or a Keras model object."""
        if isinstance(model, ModelSource):
            return model
        if isinstance(model, (str, Path)):
            return cls.parse(str(model), trust=trust)
        if isinstance(model, (bytes, bytearray, memoryview)):
            return cls(path=None, kind="tflite", content=bytes(model), name="<tflite bytes>")
        if hasattr(model, "layers") and callable(model):
            return cls(path=None, kind="object", model=model, trust=True, name=f"<keras model {getattr(model, 'name', '')}>".replace(" >", ">"))
        raise SourceError(f"cannot use a {type(model).__name__} as a model. Pass a path, TFLite bytes, or a Keras model.")

    @classmethod
    def parse(cls, text: str, *, trust: bool = False) -> "ModelSource":
        """Classify `text`; SourceError says what was received and what is accepted."""
        function = None
        if ".py:" in text:
            file_part, function = text.rsplit(":", 1)
            if not function.isidentifier():
                raise SourceError(f"cannot use {text!r}: {function!r} is not a Python function name. Write file.py:build_model.")
            path = Path(file_part)
            kind = "python"
        else:
            path = Path(text)
            if path.suffix == ".py":
                raise SourceError(f"cannot use {text!r}: name the function that returns the model, e.g. {text}:build_model.")
            kind = {".keras": "keras", ".h5": "h5", ".hdf5": "h5", ".tflite": "tflite", ".lite": "tflite"}.get(
                path.suffix.lower(), ""
            )
        if not path.exists():
            raise SourceError(f"cannot read {str(path)!r}: no such file or directory. Check the path.")
        if path.is_dir():
            if not (path / "saved_model.pb").exists():
                raise SourceError(f"cannot read {str(path)!r}: a directory but not a SavedModel (no saved_model.pb). Pass {ACCEPTED}.")
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
        raise SourceError(f"{self.display!r} is a .tflite: it has no Keras model to load. Pass the Keras model to convert it again.")


def _trust_hint(src: ModelSource) -> str:
    return (
        f"loading {str(src.path)!r} would run Python code stored in the file (a Lambda layer); "
        "Keras safe mode refused it. If you trust the file, pass --trust-model; or pass file.py:function that builds the model."
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
        raise SourceError(f"importing {str(src.path)!r} failed: {type(exc).__name__}: {exc}. Fix the file and retry.") from exc
    fn = getattr(module, src.function or "", None)
    if not callable(fn):
        found = [k for k, v in vars(module).items() if callable(v) and not k.startswith("_") and getattr(v, "__module__", "") == name]
        raise SourceError(
            f"{str(src.path)!r} has no function {src.function!r}. Functions defined there: {', '.join(found) or 'none'}."
        )
    try:
        # Seed Keras/TF/NumPy so every child process that builds this model gets the same
        # weights (recipes are converted in separate processes and compared with each other).
        import keras

        keras.utils.set_random_seed(0)
        model = fn()
    except Exception as exc:
        raise SourceError(f"{src.display} raised {type(exc).__name__}: {exc}. Fix the function and retry.") from exc
    if not hasattr(model, "layers") or not callable(model):
        raise SourceError(f"{src.display} returned {type(model).__name__}, not a Keras model. Return a keras.Model.")
    return model


def _is_safe_mode_error(exc: Exception) -> bool:
    text = str(exc)
    return "safe_mode" in text or "unsafe" in text.lower() and "lambda" in text.lower()


def _load_keras_file(src: ModelSource) -> Any:
    import keras

    try:
        return keras.saving.load_model(src.path, compile=False, safe_mode=not src.trust)
    except Exception as exc:  # noqa: BLE001 - any loader failure gets one clear line
        if _is_safe_mode_error(exc):
            raise SourceError(_trust_hint(src)) from exc
        first = exc
    tf_keras = _try_import_tf_keras()
    if tf_keras is not None:
        try:
            return tf_keras.models.load_model(src.path, compile=False, safe_mode=not src.trust)
        except Exception as exc:  # noqa: BLE001
            if _is_safe_mode_error(exc):
                raise SourceError(_trust_hint(src)) from exc
    full = " ".join(_ANSI.sub("", str(first)).split())
    missing = _MISSING_CLASS.search(full)
    if missing:
        raise SourceError(
            f"cannot load {str(src.path)!r}: it uses custom class {missing.group(1)!r}, which Keras cannot find without its code. "
            "Pass path/to/file.py:function that builds the model instead."
        ) from first
    if "Lambda" in full:
        raise SourceError(
            f"cannot load {str(src.path)!r}: Keras failed to rebuild a Lambda layer ({full[:200]}). "
            "Pass path/to/file.py:function that builds the model instead."
        ) from first
    raise SourceError(f"cannot load {str(src.path)!r} as a Keras model: {full[:300]}. Check that the file is a complete Keras save.") from first


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
        raise SourceError(f"cannot load SavedModel {str(src.path)!r}: {text}. Re-export it with tf.saved_model.save.") from exc
