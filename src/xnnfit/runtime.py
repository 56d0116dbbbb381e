"""The one place that builds LiteRT interpreters (XNNPACK on or off, threads)."""

from __future__ import annotations

from typing import Any

from xnnfit.errors import RuntimeFailure


def build_interpreter(
    content: bytes,
    *,
    xnnpack: bool = True,
    threads: int = 1,
    preserve_all_tensors: bool = False,
    node_per_delegate: bool = False,
    what: str = "the model",
) -> Any:
    """An allocated ai_edge_litert Interpreter; RuntimeFailure when the runtime refuses the model.

    `xnnpack=True` is the runtime's default (XNNPACK applied as default delegate);
    `node_per_delegate=True` makes one DELEGATE node per delegated op (no fusion).
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    if threads < 1:
        raise RuntimeFailure(f"thread count {threads} is not valid. Pass --threads 1 or more.")
    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        interpreter = Interpreter(
            model_content=content,
            num_threads=threads,
            experimental_op_resolver_type=resolver,
            experimental_preserve_all_tensors=preserve_all_tensors,
            experimental_disable_delegate_node_fusion=node_per_delegate,
        )
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        text = " ".join(str(exc).split())
        raise RuntimeFailure(
            f"the LiteRT runtime cannot run {what}"
            f"{' with XNNPACK' if xnnpack else ' without XNNPACK'}: {text[:300]}. "
            "Check that every op is a TFLite builtin (custom ops need their kernels registered)."
        ) from exc
    return interpreter


def runtime_versions() -> dict[str, str]:
    """Versions of the installed runtime packages, without importing TensorFlow."""
    from importlib import metadata

    out = {}
    for dist in ("ai-edge-litert", "tensorflow-cpu", "tensorflow", "keras"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out
