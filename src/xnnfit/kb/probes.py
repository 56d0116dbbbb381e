"""Builders for the tiny probe models KB entries carry (TensorFlow is imported only when built)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from xnnfit.kb.cause import Probe


def rejected(op: str, build: Callable[[], Any], **kw: Any) -> Probe:
    """A probe whose nodes of `op` the runtime must leave on CPU, with the cause explaining them."""
    return Probe("rejected", op, build, **kw)


def delegated(op: str, build: Callable[[], Any], **kw: Any) -> Probe:
    """A probe whose nodes of `op` the runtime must all delegate, the cause silent."""
    return Probe("delegated", op, build, **kw)


def lam(
    fn: Callable[[Any, Any], Any], shape: tuple = (16,), dtype: str = "float32", name: str = "probe"
) -> Callable[[], Any]:
    """A builder: Input(shape) -> Lambda(fn(tf, x)) as a Keras 3 model."""

    def build() -> Any:
        import keras
        import tensorflow as tf

        inp = keras.Input(shape, dtype=dtype, name="x")
        out = keras.layers.Lambda(lambda x: fn(tf, x), name=name)(inp)
        return keras.Model(inp, out, name=f"{name}_model")

    return build


def layers(*make: Callable[[Any], Any], shape: tuple = (16,)) -> Callable[[], Any]:
    """A builder: Input(shape) -> the Keras layers `make(keras)` returns, in sequence."""

    def build() -> Any:
        import keras

        inp = keras.Input(shape, name="x")
        x = inp
        for m in make:
            x = m(keras)(x)
        return keras.Model(inp, x, name="probe_model")

    return build


# XNN014 and XNN020 show the same reshape: the batch read at run time with tf.shape, and its static form.
RUNTIME_RESHAPE = "tf.reshape(x, (tf.shape(x)[0], -1))"
runtime_reshape = lam(lambda tf, x: tf.reshape(x, (tf.shape(x)[0], -1)), shape=(4, 4))
static_reshape = lam(lambda tf, x: tf.reshape(x, (-1, 16)), shape=(4, 4))


def unfrozen_conv() -> bytes:
    """A Conv2D model converted from a concrete function without freezing: weights stay variables."""
    import keras
    import tensorflow as tf

    inp = keras.Input((8, 8, 3), name="x")
    model = keras.Model(inp, keras.layers.Conv2D(4, 3, name="conv")(inp))
    fn = tf.function(lambda x: model(x, training=False))
    concrete = fn.get_concrete_function(tf.TensorSpec((1, 8, 8, 3), tf.float32))
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], model)
    return converter.convert()


# Advice demos build both models of a pair with the same seed, so layers made in the same
# order (the fallback's LSTM and the advice's LSTMCell) start from the same weights and
# the two models can be compared output for output.
SNIPPET_SEED = 0


def snippet(
    code: str, inputs: tuple[tuple[str, tuple, str], ...], setup: str = "", after: str = ""
) -> Callable[[], Any]:
    """A builder: Keras Inputs (name, shape, dtype), then `setup`, `code`, `after` run as Python; the model outputs `y`.

    The code runs with `keras`, `tf`, `np` and the input tensors bound, exactly as an
    advice shows it, so the snippet users read is the one the tests convert.
    """

    def build() -> Any:
        import keras
        import numpy as np
        import tensorflow as tf

        keras.utils.set_random_seed(SNIPPET_SEED)
        tensors = {name: keras.Input(shape, dtype=dtype, name=name) for name, shape, dtype in inputs}
        scope: dict[str, Any] = {"keras": keras, "tf": tf, "np": np, **tensors}
        exec(compile("\n".join(p for p in (setup, code, after) if p), "<advice snippet>", "exec"), scope)  # noqa: S102 - our own KB snippets
        out = scope["y"]
        ins = list(tensors.values())
        return keras.Model(ins[0] if len(ins) == 1 else ins, out, name="snippet_model")

    return build
