"""The XnnfitError hierarchy: every message says what was received and what to do."""

from __future__ import annotations


class XnnfitError(Exception):
    """An error the user can act on; the CLI prints it as one line and exits 2."""

    def __init__(self, message: str, *, detail: str | None = None):
        super().__init__(message)
        self.detail = detail  # extra text (child log, traceback) shown only with --debug


class SourceError(XnnfitError):
    """The model file or reference cannot be read or loaded."""


class ConversionError(XnnfitError):
    """The TFLite converter refused or crashed on the model."""


class RuntimeFailure(XnnfitError):
    """The LiteRT runtime refused or crashed on the model."""


class IsolationError(XnnfitError):
    """A child process crashed, hung or died."""


class InputDataError(XnnfitError):
    """Input data (--data, --calibration, --input-shape, --threads) is malformed or does not fit the model."""
