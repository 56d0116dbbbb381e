"""`xnnfit explore`: Model Explorer (optional extra `xnnfit[explorer]`) on a model with xnnfit's overlays."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from xnnfit import api
from xnnfit.core.errors import XnnfitError
from xnnfit.report.overlays import write_overlays

INSTALL = (
    "pip install 'xnnfit[explorer]'"  # the extra pins ai-edge-model-explorer (its server runs offline from the wheel)
)


def explore(model: str, *, recipe: str, port: int, open_browser: bool, quiet: bool, err: Any, **options: Any) -> None:
    """Profile `model`, write its overlays to a temporary folder, and serve Model Explorer on it until Ctrl-C."""
    try:
        import model_explorer
    except ImportError:
        raise XnnfitError(
            f"Model Explorer is not installed. Install the extra: {INSTALL}, then run xnnfit explore again."
        ) from None
    result = api.profile(model, recipe=recipe, **options)
    failed = [d for d in result.recipes if not d.ok]
    if failed:
        raise XnnfitError(f"cannot explore {model}: {failed[0].error}")
    with tempfile.TemporaryDirectory(prefix="xnnfit-explore-") as tmp:
        path = Path(tmp) / (Path(model.split(":")[0]).stem + ".tflite")
        path.write_bytes(api.convert(model, recipe=recipe, **options))
        config = model_explorer.config().add_model_from_path(str(path))
        for overlay in write_overlays(result, Path(tmp) / "xnnfit.json"):
            config.add_node_data_from_path(str(overlay))
        if not quiet:
            err.print(
                f"Model Explorer on http://localhost:{port} (Ctrl-C stops it; the overlays are in its node-data menu)"
            )
        model_explorer.visualize_from_config(config, port=port, no_open_in_browser=not open_browser)
