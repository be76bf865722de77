"""XGBoost and LightGBM models, through what the tool asks of any model: their raw
score (margin), their feature names, and the categories of the pandas ``category``
columns they were fitted on.

Neither library is imported unless the model is one of theirs: both are optional.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xaicli.models.catboost_trees import catboost_margin, is_catboost

__all__ = [
    "booster_family",
    "booster_feature_names",
    "booster_n_features",
    "booster_predict",
    "has_margin",
    "is_bare_booster",
    "lightgbm_booster",
    "margin",
    "training_categories",
    "xgboost_booster",
]


def booster_family(model: Any) -> str | None:
    """``"xgboost"`` or ``"lightgbm"`` for their boosters and scikit-learn-API models."""
    family = type(model).__module__.split(".")[0]
    if family == "xgboost" and (type(model).__name__ == "Booster" or hasattr(model, "get_booster")):
        return family
    if family == "lightgbm" and (type(model).__name__ == "Booster" or hasattr(model, "booster_")):
        return family
    return None


def is_bare_booster(model: Any) -> bool:
    return booster_family(model) is not None and type(model).__name__ == "Booster"


def has_margin(model: Any) -> bool:
    """Whether ``--output decision`` (the raw score) means something for the model: an
    XGBoost, LightGBM or CatBoost model (CatBoost's ``RawFormulaVal``)."""
    return booster_family(model) is not None or is_catboost(model)


def xgboost_booster(model: Any) -> Any:
    return model if is_bare_booster(model) else model.get_booster()


def lightgbm_booster(model: Any) -> Any:
    return model if is_bare_booster(model) else model.booster_


def margin(model: Any, data: Any) -> np.ndarray:
    """The raw score (a sum of trees): XGBoost ``output_margin=True``, LightGBM
    ``raw_score=True``, CatBoost ``RawFormulaVal``; (n_rows,) or (n_rows, n_outputs)."""
    if is_catboost(model):
        return catboost_margin(model, data)
    if booster_family(model) == "xgboost":
        if is_bare_booster(model):
            return model.predict(_dmatrix(data), output_margin=True)
        return model.predict(data, output_margin=True)
    return model.predict(data, raw_score=True)


def booster_predict(model: Any, data: Any) -> np.ndarray:
    """A bare booster's own prediction (after its objective's link)."""
    if booster_family(model) == "xgboost":
        return model.predict(_dmatrix(data))
    return model.predict(data)


def _dmatrix(data: Any) -> Any:
    import xgboost

    return xgboost.DMatrix(data, enable_categorical=True)


def booster_feature_names(model: Any) -> tuple[str, ...] | None:
    """A bare booster's stored feature names; None when it has none (LightGBM names
    unnamed columns ``Column_0``, ``Column_1``, ...: those are no names)."""
    if not is_bare_booster(model):
        return None
    if booster_family(model) == "xgboost":
        names = model.feature_names
        return tuple(str(n) for n in names) if names else None
    names = [str(n) for n in model.feature_name()]
    if names == [f"Column_{i}" for i in range(len(names))]:
        return None
    return tuple(names)


def booster_n_features(model: Any) -> int:
    if booster_family(model) == "xgboost":
        return int(xgboost_booster(model).num_features())
    return int(lightgbm_booster(model).num_feature())


def training_categories(model: Any) -> dict[str, list[Any]]:
    """Column name -> categories of each pandas ``category`` column the model was fitted
    on, in the model's order: the model reads a category by its position in that list."""
    family = booster_family(model)
    if family == "xgboost":
        return _xgboost_categories(xgboost_booster(model))
    if family == "lightgbm":
        return _lightgbm_categories(lightgbm_booster(model))
    return {}


def _xgboost_categories(booster: Any) -> dict[str, list[Any]]:
    types = booster.feature_types or []
    if "c" not in types or not hasattr(booster, "get_categories"):
        return {}
    try:
        pairs = booster.get_categories(export_to_arrow=True).to_arrow()
    except (ValueError, AttributeError):  # fitted on codes: no categories stored
        return {}
    return {str(name): array.to_pylist() for name, array in pairs if array is not None}


def _lightgbm_categories(booster: Any) -> dict[str, list[Any]]:
    lists = booster.pandas_categorical or []
    if not lists:
        return {}
    # one iteration is enough for the header, which says which features are categorical
    header = booster.dump_model(num_iteration=1)
    infos = header.get("feature_infos", {})
    names = [str(n) for n in header.get("feature_names", [])]
    categorical = [n for n in names if isinstance(infos.get(n), dict) and infos[n].get("values")]
    if len(categorical) != len(lists):
        return {}  # categorical features declared on numeric codes too: no mapping
    return {name: list(cats) for name, cats in zip(categorical, lists, strict=True)}
