"""Small models with trained weights, on data that packages ship: accuracy tests need them.

Random weights hide accuracy problems (constant or vanishing outputs), so every test
about accuracy trains one of these first (seeded, a few seconds each) and checks against
labels. The data: scikit-learn's bundled 8x8 `load_digits` (1,797 images, 10 classes) and
a synthetic token task whose label can only be read through the padding mask.

`save(kind, folder)` writes a builder (`FILE.py:build`, which rebuilds the architecture and
loads the trained weights), the eval inputs with their `labels` (`.npz`), and the
calibration inputs, for the CLI and the API alike.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

SEED = 0
DIGITS_EVAL_SHARE = 0.25  # 450 of the 1,797 digits held out: enough that one sample is 0.22 points
CALIBRATION_SAMPLES = 64  # representative inputs for the full-integer recipes, drawn from the training split
SEQ, FEATURES, TOKEN_CLASSES = 16, 8, 4
TOKEN_SAMPLES = 2400  # synthetic sequences: 1,800 to train on, 600 to evaluate
SIGNAL, DECOY, MARK = 1.0, 4.0, 3.0  # decoy lifts at valid and padded positions; the marked position's lift
MARKER = TOKEN_CLASSES  # the feature that marks the position holding the class


@dataclasses.dataclass(frozen=True)
class Split:
    """Inputs (name -> array, batch first) and integer labels, for training and for evaluation."""

    train: dict[str, np.ndarray]
    train_labels: np.ndarray
    eval: dict[str, np.ndarray]
    eval_labels: np.ndarray


def digits() -> Split:
    """scikit-learn's digits as (N, 8, 8, 1) float32 images in [0, 1], split once with a fixed seed."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[..., None]
    y = data.target.astype(np.int64)
    order = np.random.default_rng(SEED).permutation(len(x))
    cut = int(len(x) * (1 - DIGITS_EVAL_SHARE))
    tr, ev = order[:cut], order[cut:]
    return Split({"image": x[tr]}, y[tr], {"image": x[ev]}, y[ev])


def tokens() -> Split:
    """Sequences whose class sits at one marked valid position; the other valid ones and the padding carry decoys.

    Reading the class needs attention that finds the marked position (uniform attention
    averages the decoys) and a mask that hides the padding (its decoys are the strongest).
    """
    rng = np.random.default_rng(SEED)
    n = TOKEN_SAMPLES
    rows, cols = np.arange(n)[:, None], np.arange(SEQ)[None, :]
    lengths = rng.integers(4, SEQ + 1, n)
    mask = (cols < lengths[:, None]).astype(np.float32)
    labels = rng.integers(0, TOKEN_CLASSES, n)
    marked = (rng.random(n) * lengths).astype(np.int64)
    x = rng.normal(0, 1, (n, SEQ, FEATURES)).astype(np.float32)
    decoys = rng.integers(0, TOKEN_CLASSES, (n, SEQ))
    x[rows, cols, decoys] += np.where(mask > 0, SIGNAL, DECOY)
    x[np.arange(n), marked, MARKER] += MARK
    x[np.arange(n), marked, labels] += MARK
    cut = n * 3 // 4
    return Split(
        {"features": x[:cut], "mask": mask[:cut]},
        labels[:cut],
        {"features": x[cut:], "mask": mask[cut:]},
        labels[cut:],
    )


def digits_cnn(kind: str = "relu") -> Any:
    """The digits CNN (untrained): 'relu', or 'where', the seed article's (examples/digits_where.py)."""
    import keras

    if kind == "where":
        import fixtures_models

        return fixtures_models.load_example("digits_where").architecture()
    inp = keras.Input((8, 8, 1), name="image")
    x = inp
    for i, (filters, stride) in enumerate(((16, 1), (32, 2))):
        x = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", name=f"conv{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    out = keras.layers.Dense(10, name="logits")(x)
    return keras.Model(inp, out, name="digits_relu")


def masked_transformer() -> Any:
    """One attention block over (16, 8) features with a padding mask (Keras MultiHeadAttention, attention_mask)."""
    import keras
    from keras import ops

    class MaskedMean(keras.layers.Layer):
        def call(self, h, mask):
            m = ops.expand_dims(mask, -1)
            return ops.sum(h * m, axis=1) / ops.maximum(ops.sum(m, axis=1), 1.0)

    features = keras.Input((SEQ, FEATURES), name="features")
    mask = keras.Input((SEQ,), name="mask")
    h = keras.layers.Dense(32, name="embed")(features)
    attention_mask = ops.greater(ops.expand_dims(mask, 1), 0.5)  # (batch, 1, keys): every query sees valid keys
    a = keras.layers.MultiHeadAttention(2, 16, name="attention")(h, h, attention_mask=attention_mask)
    h = keras.layers.LayerNormalization(name="norm")(keras.layers.Add(name="residual")([h, a]))
    pooled = MaskedMean(name="masked_mean")(h, mask)
    out = keras.layers.Dense(TOKEN_CLASSES, name="logits")(pooled)
    return keras.Model([features, mask], out, name="masked_transformer")


MODELS = {
    "digits_relu": (lambda: digits_cnn("relu"), digits, 12),
    "digits_where": (lambda: digits_cnn("where"), digits, 12),
    "masked_transformer": (masked_transformer, tokens, 25),
}  # name -> (architecture, data, epochs)


def train(name: str) -> tuple[Any, Split]:
    """The model `name` trained on its data's training split (seeded), and the split."""
    import keras

    build, data, epochs = MODELS[name]
    keras.utils.set_random_seed(SEED)
    split = data()
    model = build()
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(split.train, split.train_labels, epochs=epochs, batch_size=32, verbose=0)
    return model, split


def accuracy(model: Any, split: Split) -> float:
    """Top-1 accuracy of a Keras model on the eval split."""
    logits = model.predict(split.eval, verbose=0)
    return float(np.mean(np.argmax(logits, axis=-1) == split.eval_labels))


def litert_top1(content: bytes, eval_path: str | Path) -> float:
    """Top-1 against the labels over every eval sample, on the LiteRT interpreter directly: the independent check."""
    from ai_edge_litert.interpreter import Interpreter

    data = dict(np.load(eval_path))
    labels = data.pop("labels")
    it = Interpreter(model_content=content)
    it.allocate_tensors()
    inputs = {d["name"]: d["index"] for d in it.get_input_details()}
    (out,) = it.get_output_details()
    right = 0
    for i, label in enumerate(labels):
        for name, index in inputs.items():
            it.set_tensor(index, data[next(k for k in data if k in name)][i : i + 1])
        it.invoke()
        right += int(np.argmax(it.get_tensor(out["index"])) == label)
    return right / len(labels)


@dataclasses.dataclass(frozen=True)
class Saved:
    """A trained model on disk: its builder reference, the eval .npz (inputs + `labels`), the calibration .npz."""

    builder: str  # FILE.py:build
    eval: Path
    calibration: Path
    keras_accuracy: float  # the trained Keras model's own top-1 on the eval split


BUILDER = '''"""Builder written by tests/trained.py: the architecture, then the trained weights."""
import sys
sys.path.insert(0, {tests!r})
import trained


def build():
    model = trained.MODELS[{name!r}][0]()
    model.load_weights({weights!r})
    return model
'''


def save(name: str, folder: Path) -> Saved:
    """Train `name` and write its builder, weights, eval data (with labels) and calibration data into `folder`."""
    model, split = train(name)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / f"{name}.weights.h5"
    model.save_weights(weights)
    builder = folder / f"{name}.py"
    builder.write_text(BUILDER.format(tests=str(Path(__file__).resolve().parent), name=name, weights=str(weights)))
    eval_path = folder / f"{name}.eval.npz"
    np.savez(eval_path, **split.eval, labels=split.eval_labels)
    calibration = folder / f"{name}.calibration.npz"
    np.savez(calibration, **{k: v[:CALIBRATION_SAMPLES] for k, v in split.train.items()})
    return Saved(f"{builder}:build", eval_path, calibration, accuracy(model, split))


def write_examples() -> None:
    """Train digits_where and write its weights, eval data (with labels) and calibration data into examples/data/."""
    import fixtures_models

    data = fixtures_models.EXAMPLES_DIR / "data"
    model, split = train("digits_where")
    model.save_weights(data / "digits_where.weights.h5")
    np.savez_compressed(data / "digits.eval.npz", **split.eval, labels=split.eval_labels)
    np.savez_compressed(data / "digits.calibration.npz", **{k: v[:CALIBRATION_SAMPLES] for k, v in split.train.items()})
    print(f"digits_where: top-1 {accuracy(model, split):.1%} on {len(split.eval_labels)} held-out digits")


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--write-examples"]:
        sys.exit("usage: python tests/trained.py --write-examples")
    write_examples()
