"""xaicli: batch feature attributions (SHAP, LIME, Integrated Gradients) for saved models.

The Python API::

    import xaicli
    table = xaicli.explain(model, frame, id_cols=["customer_id"], seed=7)
    result = xaicli.read_attributions("attributions.parquet")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["AttributionTable", "XaiError", "explain", "read_attributions", "__version__"]

if TYPE_CHECKING:
    from xaicli.api import explain
    from xaicli.errors import XaiError
    from xaicli.io.attributions import AttributionTable, read_attributions

# imported on first use, so that ``xai --version`` and the command line start fast
_LAZY = {
    "explain": "xaicli.api",
    "read_attributions": "xaicli.io.attributions",
    "AttributionTable": "xaicli.io.attributions",
    "XaiError": "xaicli.errors",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'xaicli' has no attribute {name!r}")
