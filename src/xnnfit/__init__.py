"""xnnfit: find, explain and fix what the XNNPACK delegate refuses in a TFLite/LiteRT model.

The public API is optimize(), check(), profile(), bench(), compare(), fix(), quant() and explain() (see
xnnfit.api), and the result types they return. No submodule shares a name with them,
so importing any part of xnnfit never rebinds them. TensorFlow is imported only when a
Keras model is converted.
"""

from xnnfit.api import bench, check, compare, explain, fix, optimize, profile, quant
from xnnfit.benchmark import BenchResult, CompareResult
from xnnfit.diagnosis import CheckResult, Diagnosis
from xnnfit.errors import XnnfitError
from xnnfit.fixing import FixResult
from xnnfit.kb.explanation import Explanation
from xnnfit.optimizing import OptimizeResult
from xnnfit.profiling import ProfileResult
from xnnfit.sweep import QuantResult
from xnnfit.version import __version__

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
