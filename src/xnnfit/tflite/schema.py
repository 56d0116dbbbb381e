"""Names for the TFLite schema enums (ops, tensor types) from the generated schema."""

from __future__ import annotations

import functools

from ai_edge_litert import schema_py_generated as fb

__all__ = ["fb", "op_name", "op_code", "type_name", "type_defined"]


@functools.cache
def _enum_names(enum_cls: type) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


def op_name(code: int) -> str:
    """'CONV_2D' for BuiltinOperator.CONV_2D; 'BUILTIN_<n>' for codes newer than the schema."""
    return _enum_names(fb.BuiltinOperator).get(code, f"BUILTIN_{code}")


def op_code(name: str) -> int:
    """The BuiltinOperator code for an op name such as 'SELECT_V2'."""
    return getattr(fb.BuiltinOperator, name)


def type_name(code: int) -> str:
    """Lower-case numpy-style name for a TensorType code: 'float32', 'int8', 'bool'..."""
    return _enum_names(fb.TensorType).get(code, f"type{code}").lower()


def type_defined(code: int) -> bool:
    """Whether the schema defines TensorType `code` (the runtime refuses any other: 'Unsupported data type')."""
    return code in _enum_names(fb.TensorType)
