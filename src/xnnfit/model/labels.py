"""Labels for the eval inputs: the `labels` array of the eval .npz, or a separate `--labels` .npy/.npz.

Integer labels of shape (samples,) are class ids (scored as top-1 accuracy); float labels
shaped like one output per sample are targets (scored as MAE and RMSE). A model with
several outputs needs the output named: the key `labels:<output name>`.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from xnnfit.core.errors import InputDataError

LABELS_KEY = "labels"  # the eval .npz's array of labels, beside the model's inputs


def eval_keys(path: str | Path) -> tuple[str, ...]:
    """The array names of an .npz (empty when it cannot be read: load_npz says why)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return tuple(data.files)
    except (OSError, ValueError, EOFError):
        return ()


def _read(path: str | Path) -> dict[str, np.ndarray]:
    p = Path(path)
    if not p.is_file():
        raise InputDataError(f"cannot read labels {str(path)!r}: no such file. Check the path.")
    try:
        if zipfile.is_zipfile(p):
            with np.load(p, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        return {LABELS_KEY: np.load(p, allow_pickle=False)}
    except (OSError, ValueError, EOFError) as exc:
        raise InputDataError(
            f"cannot read labels {str(path)!r}: {str(exc).rstrip('.')}. Save them with numpy.save(path, labels) "
            "or in the eval .npz as 'labels'."
        ) from exc


def load_labels(
    path: str | Path, outputs: tuple[str, ...], rows: int, *, separate: bool
) -> tuple[str, np.ndarray] | None:
    """(output name, labels) from `path`, checked against the eval set's `rows`; None when it holds none.

    `separate` is True for a --labels file (it must hold labels), False for the eval .npz
    (labels are optional there).
    """
    arrays = _read(path)
    if not separate:
        arrays = {k: v for k, v in arrays.items() if k == LABELS_KEY or k.startswith(LABELS_KEY + ":")}
    elif len(arrays) == 1 and LABELS_KEY not in arrays and not any(k.startswith(LABELS_KEY + ":") for k in arrays):
        arrays = {LABELS_KEY: next(iter(arrays.values()))}
    keyed = {k.split(":", 1)[1]: v for k, v in arrays.items() if ":" in k}
    plain = arrays.get(LABELS_KEY)
    where = f"{str(path)!r}"
    if plain is None and not keyed:
        if separate:
            raise InputDataError(
                f"{where} holds no labels (it has {', '.join(arrays) or 'no arrays'}). Save them as 'labels'."
            )
        return None
    if plain is not None:
        if len(outputs) != 1:
            raise InputDataError(
                f"labels in {where} are for one output, but the model has {len(outputs)} ({', '.join(outputs)}). "
                f"Name the output: save them as 'labels:{outputs[0]}'."
            )
        name, labels = outputs[0], plain
    else:
        if len(keyed) != 1:
            raise InputDataError(f"{where} has labels for {', '.join(keyed)}; xnnfit scores one output. Keep one.")
        name, labels = next(iter(keyed.items()))
        if name not in outputs:
            raise InputDataError(
                f"labels in {where} are for output {name!r}, which the model does not have "
                f"(its outputs: {', '.join(outputs)}). Rename the key to labels:<output>."
            )
    if labels.ndim == 0 or labels.shape[0] != rows:
        got = "a scalar" if labels.ndim == 0 else f"{labels.shape[0]} labels"
        raise InputDataError(
            f"labels in {where} do not match the eval inputs: {got} for {rows} samples. Give one label per sample."
        )
    if labels.dtype.kind not in "iuf" or (labels.dtype.kind == "f" and not np.isfinite(labels).all()):
        raise InputDataError(
            f"labels in {where} have dtype {labels.dtype}{' with NaN or inf' if labels.dtype.kind == 'f' else ''}; "
            "pass integer class ids (samples,) or finite float targets."
        )
    if labels.dtype.kind in "iu" and labels.ndim != 1:
        raise InputDataError(
            f"integer labels in {where} have shape {labels.shape}; class ids are one per sample, shape ({rows},)."
        )
    return name, labels
