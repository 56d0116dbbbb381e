"""A small transformer encoder block (token embedding, attention, MLP): fine in float, not in int8."""

import keras


def build(seq_len: int = 32, dim: int = 64, heads: int = 4, vocab: int = 1000) -> keras.Model:
    tokens = keras.Input((seq_len,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(vocab, dim, name="embed")(tokens)
    h = keras.layers.LayerNormalization(name="ln1")(x)
    h = keras.layers.MultiHeadAttention(heads, dim // heads, name="attention")(h, h)
    x = keras.layers.Add(name="residual1")([x, h])
    h = keras.layers.LayerNormalization(name="ln2")(x)
    h = keras.layers.Dense(dim * 4, activation="gelu", name="mlp_up")(h)
    h = keras.layers.Dense(dim, name="mlp_down")(h)
    x = keras.layers.Add(name="residual2")([x, h])
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    out = keras.layers.Dense(4, activation="softmax", name="classes")(x)
    return keras.Model(tokens, out, name="transformer_block")
