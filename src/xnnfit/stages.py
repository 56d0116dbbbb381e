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
from xnnfit.explain.diagnosis import Diagnosis, FixPreview, diagnose
from xnnfit.measure.profile import profile_stage
from xnnfit.model.artifact import Artifact
from xnnfit.observe.delegation import observe
from xnnfit.rewrite.engine import apply_to_fixpoint, fix_content, select_rules
from xnnfit.rewrite.fix import FP32_REFERENCE, TWIN_REFERENCE, keras_hints
from xnnfit.rewrite.float_twin import float_twin, is_quantized
from xnnfit.rewrite.rule import RewriteContext, Rule
from xnnfit.runtime.interpreter import compiled_fully_accelerated
from xnnfit.runtime.targets import Target


def check_stage(artifact: Artifact, predict_only: bool = False, target: Target | None = None) -> Diagnosis:
    """diagnose() plus a dry match of the fix rules when nodes fall back (run it in a TensorFlow-free child)."""
    return check_targets_stage(artifact, predict_only, (target,))[0]


def check_targets_stage(
    artifact: Artifact, predict_only: bool = False, targets: tuple[Target | None, ...] = ()
) -> tuple[Diagnosis, ...]:
    """check_stage() of one artifact on every target runtime: one Diagnosis per runtime.

    The fix rules are matched once for all of them.
    """
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
                    after = observe(
                        content, specs=artifact.specs, target=target
                    ).cpu_nodes  # what the rules would leave on this runtime
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
        text = (
            f"LiteRT's CompiledModel says fully accelerated = {fully}, the Interpreter's delegation says "
            f"{diag.summary()['cpu_nodes']} CPU node(s): the two runtime APIs disagree on this model"
        )
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
    result = fix_content(
        artifact, rules=rules, reference=reference, reference_name=name, dry_run=dry_run, runs=runs, policy=policy
    )
    hints = keras_hints(artifact, result.content if result.applied else None) if artifact.layers else ()
    if not sides:
        return result, hints
    fixed = dataclasses.replace(artifact, content=result.content)
    return result, hints, tuple(profile_stage(a, runs=runs) for a in (artifact, fixed))
