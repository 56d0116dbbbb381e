"""The accuracy columns of quant and optimize, and the legend under them, written once for the terminal and HTML."""

from __future__ import annotations

from xnnfit.core import fmt

NOT_JUDGED = "accuracy cannot be judged:"


def columns(budget, evaluation) -> tuple[str, ...]:
    """Against the labels (accuracy, or MAE and RMSE), then against the float reference (error, agree)."""
    if evaluation.task == "classes":
        labels: tuple[str, ...] = ("accuracy",)
    elif evaluation.task == "targets":
        labels = ("MAE", "RMSE")
    else:
        labels = ()
    return (*labels, "error", "agree") if budget.judged or labels else ("error",)


def cells(row, budget, evaluation) -> tuple[str, ...]:
    """One candidate's accuracy cells (see `columns`); '-' where accuracy cannot be judged."""
    out: list[str] = []
    if evaluation.task == "classes":
        out.append(f"{row.accuracy:.1%}" if row.accuracy is not None else "-")
    elif evaluation.task == "targets":
        out += [f"{row.mae:.4g}", f"{row.rmse:.4g}"]
    if not budget.judged:
        return (*out, "-", "-") if out else ("-",)
    if row.not_judged:
        return (*out, "not judged", "-")
    return (*out, fmt.rel(row.rel_error), "n/a" if row.top1 is None else fmt.pct(row.top1))


def legend(budget, evaluation, reference: str, rows=()) -> list[str]:
    """What the columns were measured on and mean, the budget and the Pareto mark, a line each."""
    lines = [f"measured on {evaluation.describe()}"]
    if evaluation.task == "classes":
        ref = f" ({budget.reference_accuracy:.1%} for fp32)" if budget.reference_accuracy is not None else ""
        lines.append(f"accuracy = top-1 against the labels{ref}")
    elif evaluation.task == "targets":
        lines.append("MAE, RMSE = mean absolute and root-mean-square error against the labels")
    if not budget.judged:
        lines.append(f"{NOT_JUDGED} {budget.not_judged or ''}")
        lines.append("so: no error figures, no Pareto frontier, the choice rests on speed")
        return lines
    lines.append(
        f"error = max abs error / max |output| of {reference}; agree = share of samples whose top class is "
        f"{reference}'s (n/a: not class scores)"
    )
    for reason in dict.fromkeys(r.not_judged for r in rows if r.ok and r.not_judged):
        names = ", ".join(r.recipe for r in rows if r.not_judged == reason)
        lines.append(f"not judged ({names}): {reason}")
    axis = "accuracy" if budget.max_accuracy_drop is not None else "error"
    lines.append(
        f"budget: {budget.describe()}; * = Pareto frontier over (latency, {axis}) among candidates that run, "
        "size breaking ties"
    )
    return lines
