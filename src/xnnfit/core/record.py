"""Record: frozen results as plain data (to_dict) and back (from_dict), one mechanism for all.

A field with `metadata={"dict": False}` (model bytes) stays out of the dict and comes
back as its default. `_extra()` adds derived values for readers (summaries); from_dict
ignores them. Top-level results set `RESULT` and get `schema_version` and `result` keys.
Floats that JSON cannot hold (inf, nan) are written as the strings "inf", "-inf", "nan".
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, ClassVar, Union

from xnnfit.core.errors import XnnfitError

SCHEMA_VERSION = 2  # 2: results carry versions and input specs; nodes, partitions and profiles as in 1
_SPECIAL = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}

NOT_IN_DICT = {"dict": False}


def _plain(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _build(tp: Any, value: Any) -> Any:
    origin = typing.get_origin(tp)
    if value is None:
        return None
    if isinstance(tp, type) and issubclass(tp, Record):
        return tp.from_dict(value)
    if origin in (Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        for option in options:
            try:
                return _build(option, value)
            except (TypeError, ValueError, KeyError):
                continue
        raise ValueError(f"{value!r} fits none of {options}")
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_build(args[0], v) for v in value)
        return tuple(_build(a, v) for a, v in zip(args, value))
    if origin is dict:
        _, val_tp = typing.get_args(tp)
        return {k: _build(val_tp, v) for k, v in value.items()}
    if tp is float:
        return _SPECIAL[value] if isinstance(value, str) else float(value)
    return value


class Record:
    """Mixin for frozen dataclasses: `to_dict()` gives JSON-ready data, `from_dict()` rebuilds."""

    RESULT: ClassVar[str] = ""  # set on top-level results: 'check', 'bench', 'fix', 'quant', 'explain'

    def _extra(self) -> dict[str, Any]:
        """Derived values added to the dict for readers (not read back)."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        """Plain data: dicts, lists, str, int, float, bool, None."""
        out: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "result": self.RESULT} if self.RESULT else {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if f.metadata.get("dict", True):
                out[f.name] = _plain(getattr(self, f.name))
        out.update({k: _plain(v) for k, v in self._extra().items()})
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        """The record `to_dict()` described (fields outside the dict get their defaults)."""
        if not isinstance(data, dict):
            raise XnnfitError(
                f"cannot read a {cls.__name__} from {type(data).__name__}. Pass the dict to_dict() wrote."
            )
        if cls.RESULT:
            version, kind = data.get("schema_version"), data.get("result")
            if version != SCHEMA_VERSION or kind != cls.RESULT:
                raise XnnfitError(
                    f"this is a {kind or 'unknown'!s} result of schema version {version}; {cls.__name__} reads "
                    f"'{cls.RESULT}' results of schema version {SCHEMA_VERSION}. Re-run xnnfit to regenerate it."
                )
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.init and f.metadata.get("dict", True) and f.name in data:
                kwargs[f.name] = _build(hints[f.name], data[f.name])
        return cls(**kwargs)


@dataclasses.dataclass(frozen=True)
class PerModel(Record):
    """A command's result for one model: its entries (one per recipe, or per recipe and runtime) and the versions."""

    model: str
    model_kind: str
    recipes: tuple = ()  # a subclass names the entry type (Diagnosis, BenchRun), from_dict rebuilds them as that
    versions: dict[str, str] = dataclasses.field(default_factory=dict)
