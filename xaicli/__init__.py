"""xaicli: batch feature attributions (SHAP, LIME, Integrated Gradients) for saved models."""

__version__ = "0.1.0"
