"""Dense -> a custom layer returning tf.where(x < 0, 0.1 * x, x^2) -> Dense: the classic fallback."""

import keras
import tensorflow as tf


class WhereActivation(keras.layers.Layer):
    """Leaky on the negative side, square on the positive side, written with tf.where."""

    def call(self, x):
        return tf.where(x < 0, 0.1 * x, tf.square(x))


def build() -> keras.Model:
    inp = keras.Input((10,), name="features")
    x = keras.layers.Dense(32, name="dense_in")(inp)
    x = WhereActivation(name="where_activation")(x)
    out = keras.layers.Dense(1, activation="sigmoid", name="head")(x)
    return keras.Model(inp, out, name="where_activation")
