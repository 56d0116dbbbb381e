"""fix(): convert if needed, rewrite in a child process, verify, and write the result atomically."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

from xnnfit.convert import ConvertOptions, materialize
from xnnfit.errors import XnnfitError
from xnnfit.isolate import run_isolated
from xnnfit.recipes import FP32, ConversionRecipe
from xnnfit.rewrite.engine import FixResult, fix_content, select_rules
from xnnfit.source import ModelSource


@dataclasses.dataclass(frozen=True)
class FixReport:
    """fix() for one model: the engine's result and, for Keras sources, the fallback layers."""

    model: str
    recipe: str
    result: FixResult
    output: str | None  # where the fixed model was written; None for --dry-run
    keras_hints: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (layer, cause ids) still worth fixing in the source


def check_output_path(output: str | None, source: ModelSource, force: bool) -> Path | None:
    """The output path, refused when it would overwrite the input or (without --force) any file."""
    if output is None:
        return None
    path = Path(output)
    if path.exists() and source.path.exists() and path.resolve() == source.path.resolve():
        raise XnnfitError(f"-o {output!r} is the input model; xnnfit never overwrites its input. Pick another output path.")
    if path.is_dir():
        raise XnnfitError(f"-o {output!r} is a directory. Pass a file path such as {output.rstrip('/')}/model_fixed.tflite.")
    if path.exists() and not force:
        raise XnnfitError(f"{output!r} already exists. Pass --force to replace it, or pick another path.")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise XnnfitError(f"cannot write {output!r}: folder {str(folder)!r} does not exist. Create it first.")
    if not os.access(folder, os.W_OK):
        raise XnnfitError(f"cannot write {output!r}: folder {str(folder)!r} is not writable. Pick a writable folder.")
    return path


def write_atomically(path: Path, content: bytes) -> None:
    """Write to a temp file in the same folder, then rename over `path` (no partial file on failure)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent if str(path.parent) else ".")
    except OSError as exc:
        raise XnnfitError(f"cannot write {str(path)!r}: {exc.strerror}. Pick a writable folder.") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def fix(
    model: str | ModelSource,
    output: str | None,
    *,
    recipe: ConversionRecipe = FP32,
    options: ConvertOptions = ConvertOptions(),
    rules: list[str] | None = None,
    exclude: list[str] | None = None,
    dry_run: bool = False,
    force: bool = False,
    trust: bool = False,
    runs: int = 30,
    on_step=None,
) -> FixReport:
    """Fix `model` (a .tflite, or a Keras source converted with `recipe`) and write it to `output`."""
    source = model if isinstance(model, ModelSource) else ModelSource.parse(model, trust=trust)
    path = None if dry_run else check_output_path(output, source, force)
    if not dry_run and path is None:
        raise XnnfitError("no output path. Pass -o OUT.tflite, or --dry-run to only see what would change.")
    chosen = select_rules(rules, exclude)
    if on_step:
        on_step("converting" if not source.is_tflite else "reading")
    conv = materialize(source, recipe, options)
    reference = None
    if not source.is_tflite and recipe.name != "fp32":
        reference = materialize(source, FP32, options).content  # quantized fixes are judged against the float model
    if on_step:
        on_step("rewriting and verifying")
    result = run_isolated(
        fix_content,
        conv.content,
        conv.inputs,
        rules=chosen,
        input_shapes=dict(options.input_shapes),
        reference=reference,
        dry_run=dry_run,
        runs=runs,
        what=f"fixing {source.display} ({conv.recipe})",
        timeout=options.timeout,
    )
    hints = ()
    if not source.is_tflite:
        from xnnfit.check import analyze

        diag = run_isolated(analyze, conv.content, conv.recipe, conv.layers, conv.framework, what="mapping fallbacks to layers", timeout=options.timeout)
        per_layer: dict[str, set[str]] = {}
        for n in diag.observed:
            if not n.delegated and n.layer:
                per_layer.setdefault(n.layer, set()).update(n.causes)
        hints = tuple((layer, tuple(sorted(c))) for layer, c in per_layer.items())
    if path is not None:
        write_atomically(path, result.content)
    return FixReport(source.display, conv.recipe, result, str(path) if path else None, hints)
