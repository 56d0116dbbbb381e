"""Dense -> Lambda(sin(x) * cos(x)) -> Dense: folklore says XNNPACK breaks here; today it does not."""

import keras
import tensorflow as tf


def build() -> keras.Model:
    inp = keras.Input((10,), name="features")
    x = keras.layers.Dense(32, activation="relu", name="dense_in")(inp)
    x = keras.layers.Lambda(lambda t: tf.sin(t) * tf.cos(t), name="sin_cos")(x)
    out = keras.layers.Dense(1, activation="sigmoid", name="head")(x)
    return keras.Model(inp, out, name="sin_cos_lambda")
