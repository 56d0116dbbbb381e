"""fix: materialize, rewrite and verify in one TensorFlow-free child, then write the result atomically.

A quantized Keras source is judged against its fp32 conversion (the float reference).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

from xnnfit.artifact import Artifact
from xnnfit.delegation import observe
from xnnfit.diagnosis import Diagnosis, FixPreview, diagnose
from xnnfit.errors import XnnfitError
from xnnfit.files import check_output_path, write_file
from xnnfit.isolate import run_isolated
from xnnfit.convert import ConvertOptions
from xnnfit.pipeline import Progress, materialize
from xnnfit.policy import BENCH_RUNS, COMPILED_CROSSCHECK_BYTES, DEFAULT_POLICY, DEFAULT_TIMEOUT, VerifyPolicy
from xnnfit.profiling import profile_stage
from xnnfit.recipes import FP32, ConversionRecipe
from xnnfit.record import Record
from xnnfit.rewrite.engine import RewriteResult, apply_to_fixpoint, fix_content, select_rules
from xnnfit.rewrite.float_twin import float_twin, is_quantized
from xnnfit.rewrite.rule import RewriteContext, Rule
from xnnfit.runtime import compiled_fully_accelerated, runtime_versions
from xnnfit.source import ModelSource
from xnnfit.specs import InputSpec
from xnnfit.targets import Target


@dataclasses.dataclass(frozen=True)
class KerasHint(Record):
    """A Keras layer whose nodes fall back in the conversion, and the causes: worth fixing in the source too."""

    layer: str
    causes: tuple[str, ...]
    fixed: bool = False  # the rewrite removed these fallbacks from the fixed model
    advice: tuple[str, ...] = ()  # advice ids (kb/advice.py) for these nodes in their context


@dataclasses.dataclass(frozen=True)
class FixResult(Record):
    """fix() of one model: the rewrite and its evidence, where it was written, what to change in the Keras source."""

    RESULT: ClassVar[str] = "fix"

    model: str
    model_kind: str
    recipe: str
    rewrite: RewriteResult
    inputs: tuple[InputSpec, ...] = ()
    output: str | None = None  # where the fixed model was written
    dry_run: bool = False
    keras_hints: tuple[KerasHint, ...] = ()
    versions: dict[str, str] = dataclasses.field(default_factory=dict)
    sides: tuple[Diagnosis, ...] = ()  # (before, after), profiled, when asked for (the HTML report and the trace draw them)

    @property
    def content(self) -> bytes:
        """The fixed model (empty for a result read back from JSON)."""
        return self.rewrite.content

    @property
    def changed(self) -> bool:
        """True when at least one rule was kept."""
        return bool(self.rewrite.applied)

    def save(self, path: str | Path, *, force: bool = False) -> Path:
        """Write the fixed model atomically; an existing file only with `force`."""
        if not self.content:
            raise XnnfitError("this fix result holds no model (it was read back from JSON or is a dry run). Run fix again to get one.")
        return write_file(check_output_path(path, force=force), self.content, force=force)

    def _extra(self) -> dict:
        return {"changed": self.changed, "applied": [{"rule": o.rule, "count": o.count, "where": list(o.where)} for o in self.rewrite.applied]}


TWIN_REFERENCE = "the float model rebuilt from the file's dequantized weights"
FP32_REFERENCE = "the fp32 conversion"


def check_stage(artifact: Artifact, predict_only: bool = False, target: Target | None = None) -> Diagnosis:
    """diagnose() plus a dry match of the fix rules when nodes fall back (run it in a TensorFlow-free child)."""
    return check_targets_stage(artifact, predict_only, (target,))[0]


def check_targets_stage(artifact: Artifact, predict_only: bool = False, targets: tuple[Target | None, ...] = ()) -> tuple[Diagnosis, ...]:
    """check_stage() of one artifact on every target runtime: one Diagnosis per runtime, the fix rules matched once for all."""
    candidate: list[tuple[bytes, list]] = []  # the dry-matched rewrite, made when the first runtime has CPU nodes

    def dry_match() -> tuple[bytes, list]:
        if not candidate:
            content, rules = artifact.content, []
            ctx = RewriteContext(artifact.specs)
            for rule in select_rules(None):
                out, count, _, _ = apply_to_fixpoint(rule, content, ctx)
                if out is not None:
                    content, rules = out, [*rules, (rule.id, count)]
            candidate.append((content, rules))
        return candidate[0]

    out = []
    for target in targets or (None,):
        diag = diagnose(artifact, predict_only=predict_only, target=target)
        if target is None or target.in_process:
            diag = _cross_check(diag, artifact)
        if diag.summary()["cpu_nodes"] and not diag.predicted:
            content, rules = dry_match()
            after = diag.summary()["cpu_nodes"]
            if rules:
                try:
                    after = observe(content, specs=artifact.specs, target=target).cpu_nodes  # what the rules would leave on this runtime
                except XnnfitError:
                    rules = []  # the unverified rewrite does not even load: promise nothing
            diag = dataclasses.replace(diag, fix_preview=FixPreview(tuple(rules), after))
        out.append(diag)
    return tuple(out)


def _cross_check(diag: Diagnosis, artifact: Artifact) -> Diagnosis:
    """LiteRT 2's CompiledModel verdict next to xnnfit's; a disagreement is a warning naming both."""
    if diag.predicted or artifact.size_bytes > COMPILED_CROSSCHECK_BYTES:
        return diag
    fully = compiled_fully_accelerated(artifact.content, artifact.specs)
    ours = diag.summary()["cpu_nodes"] == 0
    diag = dataclasses.replace(diag, compiled_fully_accelerated=fully)
    if fully is not None and fully != ours:
        text = (f"LiteRT's CompiledModel says fully accelerated = {fully}, the Interpreter's delegation says "
                f"{diag.summary()['cpu_nodes']} CPU node(s): the two runtime APIs disagree on this model")
        diag = dataclasses.replace(diag, warnings=(*diag.warnings, text))
    return diag


def fix_stage(
    artifact: Artifact,
    *,
    reference: bytes | None = None,
    rules: list[Rule] | None = None,
    dry_run: bool = False,
    runs: int = BENCH_RUNS,
    policy: VerifyPolicy = DEFAULT_POLICY,
    sides: bool = False,
) -> tuple:
    """Rewrite and verify the artifact, and name the Keras layers that still fall back (run it in a child).

    A quantized model is judged against `reference` (the fp32 conversion of its Keras
    source) or, without one, against the float model rebuilt from its own weights.
    Returns (rewrite, Keras hints), plus the profiled diagnoses before and after with `sides`.
    """
    name = FP32_REFERENCE
    if reference is None and not dry_run and is_quantized(artifact.content):
        reference, name = float_twin(artifact.content), TWIN_REFERENCE
    result = fix_content(artifact, rules=rules, reference=reference, reference_name=name, dry_run=dry_run, runs=runs, policy=policy)
    hints = keras_hints(artifact, result.content if result.applied else None) if artifact.layers else ()
    if not sides:
        return result, hints
    fixed = dataclasses.replace(artifact, content=result.content)
    return result, hints, tuple(profile_stage(a, runs=runs) for a in (artifact, fixed))


def _fallback_layers(artifact: Artifact) -> dict[str, tuple[set[str], dict[str, None]]]:
    out: dict[str, tuple[set[str], dict[str, None]]] = {}
    for n in diagnose(artifact).observed:
        if not n.delegated and n.layer:
            causes, advice = out.setdefault(n.layer, (set(), {}))
            causes.update(n.causes)
            advice.update(dict.fromkeys(n.advice))
    return out


def keras_hints(artifact: Artifact, fixed: bytes | None) -> tuple[KerasHint, ...]:
    """The layers that fall back in the conversion, each marked fixed when the fixed model no longer has them on CPU."""
    before = _fallback_layers(artifact)
    after = _fallback_layers(dataclasses.replace(artifact, content=fixed)) if fixed is not None else before
    return tuple(KerasHint(layer, tuple(sorted(c)), layer not in after, tuple(a)) for layer, (c, a) in before.items())


def run_fix(
    source: ModelSource,
    output: str | Path | None,
    *,
    recipe: ConversionRecipe = FP32,
    options: ConvertOptions = ConvertOptions(),
    rules: list[str] | str | None = None,
    exclude: list[str] | str | None = None,
    dry_run: bool = False,
    force: bool = False,
    force_write: bool = False,
    runs: int = BENCH_RUNS,
    policy: VerifyPolicy = DEFAULT_POLICY,
    timeout: float = DEFAULT_TIMEOUT,
    on_progress: Progress | None = None,
    sides: bool = False,
) -> FixResult:
    """Fix `source` (a .tflite, or a Keras source converted with `recipe`) and write it to `output`.

    Nothing is written for a dry run, nor when no rewrite was kept unless `force_write`.
    `sides` adds the profiled diagnoses before and after (for the HTML report and the trace).
    """
    inputs = (source.path,) if source.path is not None else ()
    path = check_output_path(output, inputs=inputs, force=force) if output is not None and not dry_run else None
    chosen = select_rules(rules, exclude)
    step = on_progress or (lambda _: None)
    step("converting" if not source.is_tflite else "reading")
    artifact = materialize(source, recipe, options, timeout=timeout)
    reference = None
    if not source.is_tflite and recipe.name != FP32.name and not dry_run:
        step("converting the float reference (fp32)")
        reference = materialize(source, FP32, options, timeout=timeout).content
    step("rewriting and verifying" if not dry_run else "matching rules")
    sides = sides and not dry_run
    if sides:
        step("rewriting, verifying and profiling before and after")
    done = run_isolated(
        fix_stage, artifact, reference=reference, rules=chosen, dry_run=dry_run, runs=runs, policy=policy, sides=sides,
        what=f"fixing {artifact.what}", timeout=timeout,
    )
    rewrite, hints = done[:2]
    result = FixResult(
        source.display, source.kind, artifact.recipe, rewrite, artifact.specs, None, dry_run, hints, runtime_versions(), done[2] if sides else ()
    )
    if path is not None and (result.changed or force_write):
        write_file(path, result.content, force=force, flag="-o")
        result = dataclasses.replace(result, output=str(path))
    return result
