"""xnnfit: find, explain and fix what the XNNPACK delegate refuses in a TFLite/LiteRT model.

The public API is check(); everything else is internal.
"""

__version__ = "0.1.0"


def check(*args, **kwargs):
    """Diagnose a model under one or more conversion recipes (see xnnfit.check.check)."""
    from xnnfit.check import check as _check

    return _check(*args, **kwargs)


__all__ = ["check", "__version__"]
