"""xnnfit: find, explain and fix what the XNNPACK delegate refuses in a TFLite/LiteRT model.

The public API is optimize(), check(), profile(), bench(), compare(), fix(), quant() and explain() (see
xnnfit.api), the result types they return, and the errors they raise: every one is an XnnfitError
(SourceError: the model cannot be read or loaded; InputDataError: input data or shapes do not fit;
ConversionError: the converter refused or crashed; RuntimeFailure: the LiteRT runtime refused or
crashed; IsolationError: a child process crashed, hung or died). No submodule shares a name with them,
so importing any part of xnnfit never rebinds them. TensorFlow is imported only when a
Keras model is converted.
"""

from xnnfit.api import bench, check, compare, explain, fix, optimize, profile, quant
from xnnfit.choose.optimize import OptimizeResult
from xnnfit.choose.quant import QuantResult
from xnnfit.core.errors import (
    ConversionError,
    InputDataError,
    IsolationError,
    RuntimeFailure,
    SourceError,
    XnnfitError,
)
from xnnfit.core.version import __version__
from xnnfit.explain.diagnosis import CheckResult, Diagnosis
from xnnfit.ids import Explanation
from xnnfit.measure.bench import BenchResult, CompareResult
from xnnfit.measure.profile import ProfileResult
from xnnfit.rewrite.fix import FixResult

__all__ = [
    "BenchResult",
    "CheckResult",
    "CompareResult",
    "ConversionError",
    "Diagnosis",
    "Explanation",
    "FixResult",
    "InputDataError",
    "IsolationError",
    "OptimizeResult",
    "ProfileResult",
    "QuantResult",
    "RuntimeFailure",
    "SourceError",
    "XnnfitError",
    "bench",
    "check",
    "compare",
    "explain",
    "fix",
    "optimize",
    "profile",
    "quant",
    "__version__",
]
