"""A small CNN with the tf.where activation after each conv: many small CPU islands."""

import keras
import tensorflow as tf


class WhereActivation(keras.layers.Layer):
    """tf.where(x < 0, 0.1 * x, x^2): two CPU nodes (LESS, SELECT) per use."""

    def call(self, x):
        return tf.where(x < 0, 0.1 * x, tf.square(x))


def build() -> keras.Model:
    inp = keras.Input((32, 32, 3), name="image")
    x = inp
    for i, filters in enumerate((16, 16, 32, 32, 64, 64, 64, 96, 96, 128)):
        x = keras.layers.Conv2D(filters, 3, strides=2 if i in (1, 3, 6) else 1, padding="same", name=f"conv{i}")(x)
        x = WhereActivation(name=f"act{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    out = keras.layers.Dense(10, name="logits")(x)
    return keras.Model(inp, out, name="where_cnn")


class ArithmeticActivation(keras.layers.Layer):
    """The same function from ops XNNPACK runs in float and int8: LEAKY_RELU, MUL, SUB, ADD."""

    def call(self, x):
        leaky = tf.nn.leaky_relu(x, 0.1)  # 0.1x below 0, x above
        pos = (leaky - 0.1 * x) / 0.9  # relu(x) without RELU/MAXIMUM (float-only in int8)
        return leaky * pos + (leaky - pos)  # 0.1x below 0, x*x above


def build_twin() -> keras.Model:
    """The hand-written, fully delegated twin of build(): same weights layout, same function."""
    inp = keras.Input((32, 32, 3), name="image")
    x = inp
    for i, filters in enumerate((16, 16, 32, 32, 64, 64, 64, 96, 96, 128)):
        x = keras.layers.Conv2D(filters, 3, strides=2 if i in (1, 3, 6) else 1, padding="same", name=f"conv{i}")(x)
        x = ArithmeticActivation(name=f"act{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    out = keras.layers.Dense(10, name="logits")(x)
    return keras.Model(inp, out, name="where_cnn_twin")
