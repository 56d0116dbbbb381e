"""The seed article's CNN with trained weights: tf.where activations and a dynamic reshape, on 8x8 digits.

Trained on scikit-learn's digits (`python tests/trained.py --write-examples` rewrites the
weights and data in examples/data/); `examples/data/digits.eval.npz` holds the 450
held-out images with their `labels`, `digits.calibration.npz` 64 training images.

    xnnfit optimize examples/digits_where.py:build -o best.tflite \\
        --calibration examples/data/digits.calibration.npz --eval examples/data/digits.eval.npz
"""

from pathlib import Path

import keras
import tensorflow as tf

WEIGHTS = Path(__file__).resolve().parent / "data" / "digits_where.weights.h5"


def architecture() -> keras.Model:
    """The untrained model: two convolutions with tf.where activations, a Lambda flatten with a runtime batch."""
    inp = keras.Input((8, 8, 1), name="image")
    x = inp
    for i, (filters, stride) in enumerate(((16, 1), (32, 2))):
        x = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", name=f"conv{i}")(x)
        x = keras.layers.Lambda(lambda t: tf.where(t < 0, 0.1 * t, t), name=f"where_act{i}")(x)
    x = keras.layers.Lambda(lambda t: tf.reshape(t, [tf.shape(t)[0], 4 * 4 * 32]), name="dynamic_flatten")(x)
    out = keras.layers.Dense(10, name="logits")(x)
    return keras.Model(inp, out, name="digits_where")


def build() -> keras.Model:
    """The trained model."""
    model = architecture()
    model.load_weights(WEIGHTS)
    return model
