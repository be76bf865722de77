"""Gradient-boosting libraries' own model files, which load without unpickling (no code
runs): XGBoost ``.json``/``.ubj``, LightGBM ``.txt``/``.lgb``/``.model``, CatBoost ``.cbm``.
Also what the loader says when a model needs one of these libraries and it is missing,
and the column names of the boosters these files give."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from xaicli.errors import DataError, ModelLoadError

XGBOOST_SUFFIXES = (".json", ".ubj")
LIGHTGBM_SUFFIXES = (".txt", ".lgb", ".model")
CATBOOST_SUFFIXES = (".cbm",)
NATIVE_SUFFIXES = XGBOOST_SUFFIXES + LIGHTGBM_SUFFIXES + CATBOOST_SUFFIXES
#: import name -> the extra that installs it
EXTRAS = {"xgboost": "xgboost", "lightgbm": "lightgbm", "catboost": "catboost"}


def is_native_file(spec: str) -> bool:
    return Path(spec).suffix.lower() in NATIVE_SUFFIXES


def missing_library(exc: BaseException, what: str) -> ModelLoadError | None:
    """The error to give when ``exc`` is an import of a boosting library that is not
    installed (None for anything else); ``what`` names the model."""
    if not isinstance(exc, ImportError):
        return None
    name = (getattr(exc, "name", None) or "").split(".")[0]
    if name not in EXTRAS:
        return None
    return ModelLoadError(
        f"{what} needs the {name} library, which is not installed; "
        f"install it with: pip install 'xaicli[{EXTRAS[name]}]'"
    )


def load_native_file(path: Path) -> Any:
    """The booster a library's own model file holds: ``xgboost.Booster``,
    ``lightgbm.Booster``, or a CatBoostClassifier/CatBoostRegressor (by the stored loss)."""
    suffix = path.suffix.lower()
    library = (
        "xgboost"
        if suffix in XGBOOST_SUFFIXES
        else "lightgbm"
        if suffix in LIGHTGBM_SUFFIXES
        else "catboost"
    )
    try:
        module = importlib.import_module(library)
    except ImportError as exc:
        error = missing_library(exc, f"model file {path}")
        raise (error or exc) from None
    loader = {"xgboost": _load_xgboost, "lightgbm": _load_lightgbm, "catboost": _load_catboost}
    return loader[library](module, path)


def _load_xgboost(xgboost: Any, path: Path) -> Any:
    if path.suffix.lower() == ".json":
        _check_xgboost_json(path)
    booster = xgboost.Booster()
    try:
        booster.load_model(str(path))
    except Exception as exc:  # XGBoostError, with the C++ log in its message
        raise ModelLoadError(
            f"model file {path} is not an XGBoost model ({_first_line(exc)})"
        ) from exc
    return booster


def _check_xgboost_json(path: Path) -> None:
    """A JSON file that is not an XGBoost model (a job file, data) gets one line, not
    XGBoost's C++ log."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(
            f"model file {path} is not valid JSON ({exc}); a .json model must be an XGBoost "
            "model saved with save_model"
        ) from None
    if not isinstance(document, dict) or "learner" not in document:
        raise ModelLoadError(
            f"model file {path} is JSON but not an XGBoost model (no 'learner' key); "
            "a .json model must be an XGBoost model saved with save_model"
        )


def _load_lightgbm(lightgbm: Any, path: Path) -> Any:
    with path.open("rb") as handle:
        head = handle.read(64)
    if not head.startswith(b"tree"):
        raise ModelLoadError(
            f"model file {path} is not a LightGBM text model (it should start with 'tree'); "
            "save one with booster.save_model"
        )
    try:
        return lightgbm.Booster(model_file=str(path))
    except Exception as exc:
        raise ModelLoadError(f"model file {path} does not load ({_first_line(exc)})") from exc


def _load_catboost(catboost: Any, path: Path) -> Any:
    from catboost.core import is_classification_objective

    model = catboost.CatBoost()
    try:
        model.load_model(str(path), format="cbm")
    except Exception as exc:
        raise ModelLoadError(
            f"model file {path} is not a CatBoost model ({_first_line(exc)})"
        ) from exc
    # the stored loss tells a classifier (classes, probabilities) from a regressor
    loss = str(model.get_all_params().get("loss_function", ""))
    if is_classification_objective(loss):
        return catboost.to_classifier(model)
    return catboost.to_regressor(model)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def booster_names(model: Any) -> tuple[tuple[str, ...] | None, int | None] | None:
    """(column names or None when the model stores none, number of columns) of a bare
    XGBoost or LightGBM booster or a CatBoost model; None for any other model."""
    from xaicli.models.boosters import booster_feature_names, booster_n_features, is_bare_booster
    from xaicli.models.catboost_trees import catboost_names, is_catboost

    if is_catboost(model):
        return catboost_names(model)
    if is_bare_booster(model):
        return booster_feature_names(model), booster_n_features(model)
    return None


def needs_feature_names(spec: str, model: Any) -> bool:
    """True when the column order must come from --features: a library's own model file
    or a bare booster that stores no column names."""
    from xaicli.models.boosters import is_bare_booster

    return is_native_file(spec) or is_bare_booster(model)


def check_native_features(spec: str, model: Any, given: tuple[str, ...] | None) -> None:
    """A native model without column names needs --features, as many as it has inputs."""
    found = booster_names(model)
    if found is None or found[0] is not None or not needs_feature_names(spec, model):
        return
    n_features = found[1]
    if not given:
        raise DataError(
            f"the model {spec} stores no column names; name its {n_features} input columns, "
            "in the model's order, with --features"
        )
    if n_features is not None and len(given) != n_features:
        raise DataError(
            f"--features names {len(given)} columns but the model {spec} has {n_features} inputs"
        )
