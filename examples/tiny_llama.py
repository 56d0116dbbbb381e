"""A tiny keras-hub Llama backbone (GQA, RoPE, causal + padding mask): what transformers look like on XNNPACK.

xnnfit check examples/tiny_llama.py:build
xnnfit fix examples/tiny_llama.py:build -o tiny_llama_fixed.tflite
"""

import keras


def build() -> keras.Model:
    import keras_hub

    keras.utils.set_random_seed(0)
    return keras_hub.models.LlamaBackbone(
        vocabulary_size=1000,
        num_layers=2,
        num_query_heads=4,
        num_key_value_heads=2,
        hidden_dim=64,
        intermediate_dim=128,
    )
