"""Which models a batch checks, and how: folders and globs expanded, a TOML manifest read, the two merged.

A manifest is the whole truth of its models: every path in it is relative to the manifest
file, its budgets apply with the command line's on top (the stricter of each wins), and a
model it lists is not checked a second time because a folder argument also holds it.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from pathlib import Path

from xnnfit.core.errors import XnnfitError
from xnnfit.core.record import Record
from xnnfit.explain.diagnosis import Gates
from xnnfit.ids import CAUSE, HAZARD, IDS

MODEL_SUFFIXES = (
    ".tflite",
    ".lite",
    ".keras",
    ".h5",
    ".hdf5",
)  # what a folder is searched for (and SavedModel folders)
KEYS = (
    "path",
    "recipes",
    "input_shape",
    "calibration",
    "max_partitions",
    "fail_on_fallback",
    "min_delegated",
    "ignore",
)  # what a [[model]] (or [defaults]) table may set


@dataclasses.dataclass(frozen=True)
class ModelSpec(Record):
    """One model of a batch, with what the manifest says about it."""

    path: str
    recipes: tuple[str, ...] = ("fp32",)
    input_shape: tuple[str, ...] = ()
    calibration: str | None = None
    gates: Gates = Gates()
    ignore: tuple[str, ...] = ()  # cause and hazard ids accepted for this model: reported as ignored, never failing


def file_of(model: str) -> str:
    """The file part of a model reference ('enc.py' of 'enc.py:build')."""
    return model.rsplit(":", 1)[0] if ".py:" in model else model


def same_model(a: str, b: str) -> bool:
    """True when two references name the same model (the same file, and the same function of a .py)."""
    fa, fb = file_of(a), file_of(b)
    suffix_a, suffix_b = a[len(fa) :], b[len(fb) :]
    return suffix_a == suffix_b and os.path.realpath(fa) == os.path.realpath(fb)


def expand(paths: list[str]) -> list[str]:
    """Model references from files, folders (every model inside, recursively) and globs; in order, no duplicates."""
    out: list[str] = []
    for text in paths:
        if ".py:" in text:
            out.append(text)
            continue
        matches = sorted(glob.glob(text, recursive=True)) if glob.has_magic(text) else [text]
        if not matches:
            raise XnnfitError(
                f"{text!r} matches no file. Check the pattern (quote it so the shell does not expand it)."
            )
        for m in matches:
            p = Path(m)
            if p.is_dir() and not (p / "saved_model.pb").exists():
                found = [str(f) for f in sorted(p.rglob("*")) if f.suffix.lower() in MODEL_SUFFIXES and f.is_file()]
                found += [str(f.parent) for f in sorted(p.rglob("saved_model.pb"))]
                if not found:
                    raise XnnfitError(
                        f"folder {m!r} holds no model ({', '.join(MODEL_SUFFIXES)} or a SavedModel). Pass a "
                        "folder of models."
                    )
                out.extend(sorted(found))
            else:
                out.append(m)
    return list(dict.fromkeys(out))


def _relative_to(base: Path, target: str) -> str:
    """`target` (a path, or a path.py:function) relative to the folder `base`, unless absolute."""
    file = file_of(target)
    return target if Path(file).is_absolute() else str(base / file) + target[len(file) :]


def _ids(value: object, where: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise XnnfitError(f'{where}: ignore must be a list of ids, got {value!r}. Write ignore = ["XNN001"].')
    out = []
    for item in items:
        entry = IDS.get(item.strip().upper())
        if entry is None or entry.kind not in (CAUSE, HAZARD):
            raise XnnfitError(
                f"{where}: ignore lists {item!r}, which is no cause or hazard id. Pass ids xnnfit reports, such as "
                "XNN001 (xnnfit explain lists them)."
            )
        out.append(entry.id)
    return tuple(sorted(set(out)))


def read_manifest(path: str | Path) -> list[ModelSpec]:
    """Models of a TOML manifest: `[defaults]` and `[[model]]` tables, every path relative to the manifest."""
    import tomllib

    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise XnnfitError(f"cannot read manifest {str(p)!r}: no such file. Check the path.") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise XnnfitError(
            f'cannot read manifest {str(p)!r}: {exc}. Write it as TOML: [[model]] path = "m.tflite".'
        ) from None
    defaults = data.get("defaults", {})
    models = data.get("model", [])
    if not isinstance(models, list) or not models:
        raise XnnfitError(f"manifest {str(p)!r} lists no [[model]]. Add one table per model with a path.")
    out = []
    for k, m in enumerate(models):
        entry = {**defaults, **m}
        unknown = set(entry) - set(KEYS)
        where = f"manifest {str(p)!r}, model {k + 1}"
        if unknown or "path" not in m:
            raise XnnfitError(
                f"{where}: {'unknown keys ' + ', '.join(sorted(unknown)) if unknown else 'no path'}. Keys: "
                f"{', '.join(sorted(KEYS))}."
            )
        calibration = entry.get("calibration")
        gates = Gates(
            bool(entry.get("fail_on_fallback", False)), entry.get("max_partitions"), entry.get("min_delegated")
        )
        recipes = entry.get("recipes", ["fp32"])
        out.append(
            ModelSpec(
                _relative_to(p.parent, m["path"]),
                tuple([recipes] if isinstance(recipes, str) else recipes),
                tuple(entry.get("input_shape", ())),
                _relative_to(p.parent, calibration) if calibration else None,
                gates,
                _ids(entry.get("ignore", []), where),
            )
        )
    return out


def merge(manifest: list[ModelSpec], names: list[str], recipes: tuple[str, ...], gates: Gates) -> list[ModelSpec]:
    """The batch's models: the manifest's with the command line's gates on top, then the others named.

    A model the manifest lists is checked once, as the manifest says, even when a folder or
    glob on the command line holds it too.
    """
    specs = [dataclasses.replace(s, gates=s.gates.stricter(gates)) for s in manifest]
    specs += [ModelSpec(n, recipes, (), None, gates) for n in names if not any(same_model(n, s.path) for s in manifest)]
    return specs
