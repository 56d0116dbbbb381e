"""A decoder that upsamples with UpSampling2D (nearest, the default) between convs."""

import keras


def build() -> keras.Model:
    inp = keras.Input((8, 8, 32), name="latent")
    x = inp
    for i, filters in enumerate((32, 16, 8)):
        x = keras.layers.UpSampling2D(2, name=f"up{i}")(x)
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{i}")(x)
    out = keras.layers.Conv2D(3, 1, activation="sigmoid", name="rgb")(x)
    return keras.Model(inp, out, name="upsampling_decoder")
