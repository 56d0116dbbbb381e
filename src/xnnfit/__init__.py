"""xnnfit: find, explain and fix what the XNNPACK delegate refuses in a TFLite/LiteRT model.

The public API is optimize(), check(), profile(), bench(), compare(), fix(), quant() and explain() (see
xnnfit.api), and the result types they return. No submodule shares a name with them,
so importing any part of xnnfit never rebinds them. TensorFlow is imported only when a
Keras model is converted.
"""

from xnnfit.api import bench, check, compare, explain, fix, optimize, profile, quant
from xnnfit.choose.optimize import OptimizeResult
from xnnfit.choose.quant import QuantResult
from xnnfit.core.errors import XnnfitError
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
    "Diagnosis",
    "Explanation",
    "FixResult",
    "OptimizeResult",
    "ProfileResult",
    "QuantResult",
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
