"""What each command runs in its TensorFlow-free child, where a stage draws on several packages.

check = observe + explain (diagnose), the CompiledModel cross-check, and the fix preview
(what `xnnfit fix` would do: rewrite.preview, the same dry run as `fix --dry-run`);
fix = rewrite and verify (rewrite.engine), the Keras layers still falling back, and with
`sides` the profiles before and after (measure.profile). bench, profile and compare stages
live in measure/, quant's and optimize's in choose/.
"""

from __future__ import annotations

import dataclasses

from xnnfit.core.errors import XnnfitError
from xnnfit.core.policy import BENCH_RUNS, COMPILED_CROSSCHECK_BYTES, DEFAULT_POLICY, VerifyPolicy
from xnnfit.core.record import Record
from xnnfit.explain.diagnosis import Diagnosis, FixPreview, diagnose
from xnnfit.measure.profile import profile_stage
from xnnfit.model.artifact import Artifact
from xnnfit.observe.delegation import observe
from xnnfit.rewrite.engine import RewriteResult, fix_content
from xnnfit.rewrite.fix import KerasHint, judged_against, keras_hints
from xnnfit.rewrite.preview import Preview, preview
from xnnfit.rewrite.rule import Rule
from xnnfit.runtime.interpreter import compiled_fully_accelerated
from xnnfit.runtime.targets import Target


@dataclasses.dataclass(frozen=True)
class PerRuntime(Record):
    """One artifact checked on several runtimes: a Diagnosis per runtime, in the order asked."""

    diagnoses: tuple[Diagnosis, ...]


def check_stage(artifact: Artifact, predict_only: bool = False, target: Target | None = None) -> Diagnosis:
    """diagnose() plus the fix preview when nodes fall back (run it in a TensorFlow-free child)."""
    return check_targets_stage(artifact, predict_only, (target,)).diagnoses[0]


def check_targets_stage(
    artifact: Artifact, predict_only: bool = False, targets: tuple[Target | None, ...] = ()
) -> PerRuntime:
    """check_stage() of one artifact on every target runtime: one Diagnosis per runtime.

    The fix rules are matched once for all of them.
    """
    made: list[Preview] = []  # the fix preview, made once, when the first runtime has CPU nodes

    def fix_preview() -> Preview:
        if not made:
            made.append(preview(artifact))
        return made[0]

    out = []
    for target in targets or (None,):
        diag = diagnose(artifact, predict_only=predict_only, target=target)
        if target is None or target.in_process:
            diag = _cross_check(diag, artifact)
        if diag.summary()["cpu_nodes"] and not diag.predicted:
            planned = fix_preview()
            rules, after = planned.matched, diag.summary()["cpu_nodes"]
            if rules:
                try:  # what the rules would leave on this runtime
                    after = observe(planned.content, specs=artifact.specs, target=target).cpu_nodes
                except XnnfitError:
                    rules = ()  # the unverified rewrite does not even load: promise nothing
            diag = dataclasses.replace(diag, fix_preview=FixPreview(rules, after))
        out.append(diag)
    return PerRuntime(tuple(out))


def _cross_check(diag: Diagnosis, artifact: Artifact) -> Diagnosis:
    """LiteRT 2's CompiledModel verdict next to xnnfit's; a disagreement is a warning naming both."""
    if diag.predicted or artifact.size_bytes > COMPILED_CROSSCHECK_BYTES:
        return diag
    fully = compiled_fully_accelerated(artifact.content, artifact.specs)
    ours = diag.summary()["cpu_nodes"] == 0
    diag = dataclasses.replace(diag, compiled_fully_accelerated=fully)
    if fully is not None and fully != ours:
        text = (
            f"LiteRT's CompiledModel says fully accelerated = {fully}, the Interpreter's delegation says "
            f"{diag.summary()['cpu_nodes']} CPU node(s): the two runtime APIs disagree on this model"
        )
        diag = dataclasses.replace(diag, warnings=(*diag.warnings, text))
    return diag


@dataclasses.dataclass(frozen=True)
class FixOutcome(Record):
    """What the fix stage hands back from its child: the rewrite, the layers still falling back, the sides."""

    rewrite: RewriteResult
    keras_hints: tuple[KerasHint, ...] = ()
    sides: tuple[Diagnosis, ...] = ()  # (before, after), profiled, when asked for


def fix_stage(
    artifact: Artifact,
    *,
    fp32: bytes | None = None,
    rules: list[Rule] | None = None,
    dry_run: bool = False,
    runs: int = BENCH_RUNS,
    policy: VerifyPolicy = DEFAULT_POLICY,
    sides: bool = False,
    data: str | None = None,
) -> FixOutcome:
    """Rewrite and verify the artifact, and name the Keras layers that still fall back (run it in a child).

    A quantized model is judged against what rewrite.fix.judged_against says (`fp32`: the
    fp32 conversion of its Keras source, if any). Every rewrite is verified on all samples
    of `data` (an .npz), else on seeded random ones in each input's range. A dry run
    applies and verifies nothing: its outcomes are the fix preview, as check shows it.
    `sides` adds the profiled diagnoses before and after.
    """
    if dry_run:
        return FixOutcome(preview(artifact, rules).as_dry_run(artifact.content))
    reference, name = judged_against(artifact.content, fp32)
    result = fix_content(
        artifact, rules=rules, reference=reference, reference_name=name, runs=runs, policy=policy, data=data
    )
    hints = keras_hints(artifact, result.content if result.applied else None) if artifact.layers else ()
    if not sides:
        return FixOutcome(result, hints)
    fixed = dataclasses.replace(artifact, content=result.content)
    return FixOutcome(result, hints, tuple(profile_stage(a, runs=runs) for a in (artifact, fixed)))
