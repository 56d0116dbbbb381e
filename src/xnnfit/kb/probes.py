"""Builders for the tiny probe models KB entries carry (TensorFlow is imported only when built)."""

from __future__ import annotations

from typing import Any, Callable


def lam(fn: Callable[[Any, Any], Any], shape: tuple = (16,), dtype: str = "float32", name: str = "probe") -> Callable[[], Any]:
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
