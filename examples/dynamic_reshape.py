"""A layer that reshapes with tf.shape(x)[0]: harmless at a fixed batch, integer plumbing with --dynamic-batch."""

import math

import keras
import tensorflow as tf


class DynamicReshape(keras.layers.Layer):
    """Flattens all but the batch axis, reading the batch size at run time."""

    def call(self, x):
        batch_size = tf.shape(x)[0]
        return tf.reshape(x, (batch_size, -1))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], math.prod(input_shape[1:]))


def build() -> keras.Model:
    inp = keras.Input((10, 5), name="sequence")
    x = keras.layers.Dense(32, activation="relu", name="dense_in")(inp)
    x = DynamicReshape(name="dynamic_reshape")(x)
    out = keras.layers.Dense(1, activation="sigmoid", name="head")(x)
    return keras.Model(inp, out, name="dynamic_reshape")
