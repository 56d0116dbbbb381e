"""What accuracy is measured on, decided once for quant and optimize: the eval inputs, their count, their labels.

Real data (`--eval`, else the calibration data) is used whole, or its first
`--eval-samples`; without data, seeded random inputs stand in and every accuracy figure
is only indicative. Labels come from the eval .npz (`labels`) or `--labels`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from xnnfit.choose.selection import Budget, budget_for
from xnnfit.core.errors import InputDataError
from xnnfit.core.policy import RANDOM_EVAL_SAMPLES
from xnnfit.core.record import NOT_IN_DICT, Record
from xnnfit.measure.accuracy import Outputs, agreement, judge, output_steps, task_score
from xnnfit.model.convert import ConvertOptions
from xnnfit.model.inputs import load_npz, random_inputs
from xnnfit.model.labels import load_labels
from xnnfit.tflite.graph import read_model


@dataclasses.dataclass(frozen=True)
class EvalRequest:
    """What the user passed for evaluation (api's quant/optimize options)."""

    data: str | None = None  # --eval
    labels: str | None = None  # --labels (else the eval .npz's 'labels')
    samples: int | None = None  # --eval-samples: the first N samples (None: all)


@dataclasses.dataclass(frozen=True)
class EvalSet(Record):
    """The eval inputs and labels accuracy is measured on, and how they were chosen (JSON: `eval`)."""

    source: str  # 'eval.npz', 'the calibration data eval.npz' or 'seeded random inputs'
    samples: int  # rows of input data used (the batch rows over all runs)
    available: int  # rows the data holds
    labels: str | None = None  # where the labels came from, None without labels
    labels_output: str | None = None  # the model output they score
    task: str | None = None  # 'classes' (integer ids: top-1 accuracy) or 'targets' (float: MAE, RMSE)
    warnings: tuple[str, ...] = ()
    inputs: tuple = dataclasses.field(default=(), repr=False, compare=False, metadata=NOT_IN_DICT)  # per run
    label_values: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False, metadata=NOT_IN_DICT)

    @property
    def real(self) -> bool:
        """True when the inputs are the user's data, not random."""
        return self.source != RANDOM

    def describe(self) -> str:
        """'450 samples of eval.npz, with its labels' (what every accuracy column was measured on)."""
        shown = f"{self.samples} of {self.available}" if self.samples < self.available else str(self.samples)
        labels = f", labels from {self.labels}" if self.labels else ", no labels"
        return f"{shown} samples of {self.source}{labels}"


RANDOM = "seeded random inputs"


def eval_set(content: bytes, specs, request: EvalRequest, options: ConvertOptions) -> EvalSet:
    """The eval set for a model converted with `specs` (its fp32 conversion's bytes name its outputs)."""
    if request.samples is not None and request.samples < 1:
        raise InputDataError(f"--eval-samples {request.samples} is not valid. Pass 1 or more, or leave it out.")
    warnings: list[str] = []
    path = request.data or options.calibration
    batch = specs[0].run_shape[0] if specs and specs[0].shape else 1
    if path:
        runs = load_npz(path, specs)
        available = len(runs) * batch
        if request.samples is not None:
            runs = runs[: max(1, request.samples // batch)]
        source = str(path) if request.data else f"the calibration data {path}"
        if options.calibration and (not request.data or _same_file(request.data, options.calibration)):
            warnings.append(
                "accuracy is measured on the calibration data: the quantization ranges were fit to these inputs, "
                "so errors look smaller than on new data; pass other inputs with --eval"
            )
    else:
        if request.labels:
            raise InputDataError(
                f"--labels {request.labels} needs the inputs they label. Pass them with --eval FILE.npz."
            )
        runs = random_inputs(specs, RANDOM_EVAL_SAMPLES, seed=options.seed + 1)
        available, source = len(runs) * batch, RANDOM
        warnings.append(
            "no --eval or --calibration data: accuracy measured on seeded random inputs, so it is only indicative"
        )
    rows = len(runs) * batch
    labels = None
    if path:
        outputs = _output_names(content)
        found = load_labels(request.labels, outputs, available, separate=True) if request.labels else None
        if found is None and not request.labels:
            found = load_labels(path, outputs, available, separate=False)
        if found is not None:
            name, values = found
            labels = (request.labels or path, name, values[:rows])
    return EvalSet(
        source=source,
        samples=rows,
        available=available,
        labels=labels[0] if labels else None,
        labels_output=labels[1] if labels else None,
        task=None if labels is None else ("classes" if labels[2].dtype.kind in "iu" else "targets"),
        warnings=tuple(warnings),
        inputs=tuple(runs),
        label_values=labels[2] if labels else None,
    )


def output_index(content: bytes, name: str) -> int:
    """The position of output `name` among the model's outputs."""
    return _output_names(content).index(name)


def _output_names(content: bytes) -> tuple[str, ...]:
    sub = read_model(content).primary
    return tuple(sub.tensors[t].name for t in sub.outputs)


def _same_file(a: str, b: str) -> bool:
    pa, pb = Path(a), Path(b)
    return pa.resolve() == pb.resolve() or (pa.is_file() and pb.is_file() and pa.read_bytes() == pb.read_bytes())


def scores(
    evaluation: EvalSet, output: int, reference: Outputs, candidate: Outputs, classes: bool, content: bytes
) -> dict:
    """A candidate's figures against the float reference's outputs and, with labels, against the labels."""
    fields = agreement(reference, candidate, classes).to_dict()
    fields["not_judged"] = row_judgement(evaluation, reference, content)
    if evaluation.label_values is not None:
        fields |= task_score(candidate, output, evaluation.label_values).to_dict()
    return fields


REMEDY = "use trained weights, or pass real --eval data with labels"  # what quant and optimize users can change


def budget(
    evaluation: EvalSet, reference: Outputs, output: int, max_error: float | None, max_accuracy_drop: float | None
) -> tuple[Budget, list[str]]:
    """The budget candidates are held to, whether accuracy can be judged, and the warnings about it.

    Class labels always judge (the float model's own accuracy is the reference); without
    them a float reference that is zero, float32 noise or the same for every eval input
    cannot judge anything (measure.accuracy.judge).
    """
    verdict = dataclasses.replace(judge(reference), remedy=REMEDY)
    classes = evaluation.task == "classes"
    accuracy = task_score(reference, output, evaluation.label_values).accuracy if classes else None
    chosen = budget_for(max_error, max_accuracy_drop, class_labels=classes, reference_accuracy=accuracy)
    if not verdict.judged and not classes:
        chosen = dataclasses.replace(chosen, judged=False, not_judged=verdict.reason)
    # unjudged, the budget carries the reason (said under the table); with labels it stays a warning
    return chosen, [verdict.message] if not verdict.judged and classes else []


def row_judgement(evaluation: EvalSet, reference: Outputs, content: bytes) -> str | None:
    """Why one candidate's error against the reference means nothing (its output step is above the reference's scale).

    None when it can be judged, and always with class labels (they judge every candidate).
    """
    if evaluation.task == "classes":
        return None
    verdict = judge(reference, output_step=output_steps(content))
    return None if verdict.judged or verdict.kind != "below-step" else verdict.reason
