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
