"""xnnfit: find, explain and fix what the XNNPACK delegate refuses in a TFLite/LiteRT model.

The public API is check(), bench(), profile() and fix(); everything else is internal.
Imports are lazy so that `import xnnfit` stays cheap and never imports TensorFlow.
"""

__version__ = "0.1.0"


def check(*args, **kwargs):
    """Diagnose a model under one or more conversion recipes (see xnnfit.check.check)."""
    from xnnfit.check import check as _check

    return _check(*args, **kwargs)


def bench(*args, **kwargs):
    """Whole-model latency with and without XNNPACK (see xnnfit.bench.bench)."""
    from xnnfit.bench import bench as _bench

    return _bench(*args, **kwargs)


def profile(model, recipes=None, options=None, **profile_options):
    """check() plus time per partition, CPU node and Keras layer (see xnnfit.profile)."""
    from xnnfit.check import check as _check
    from xnnfit.convert import ConvertOptions
    from xnnfit.recipes import FP32

    return _check(model, recipes or (FP32,), options or ConvertOptions(), profile=profile_options)


def fix(*args, **kwargs):
    """Rewrite a model so XNNPACK runs it whole, verified (see xnnfit.fix.fix)."""
    from xnnfit.fix import fix as _fix

    return _fix(*args, **kwargs)


__all__ = ["bench", "check", "fix", "profile", "__version__"]
