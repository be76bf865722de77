"""The Python API: the same run as ``xai explain``, from a notebook or a scheduler's task."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from xaicli.config import FIELD_NAMES, build_config
from xaicli.errors import UsageError

# options that only make sense for one command-line invocation
_NOT_OPTIONS = {"model", "data", "out", "out_format", "manifest", "resume", "quiet"}


def explain(
    model: Any,
    data: pd.DataFrame | str | Path,
    *,
    out: str | Path | None = None,
    on_note: Callable[[str], None] | None = None,
    **options: Any,
) -> pd.DataFrame:
    """Per-row attributions of ``model`` on ``data``, as ``xai explain`` computes them.

    Parameters
    ----------
    model : estimator, callable or path
        A fitted scikit-learn estimator or Pipeline, any callable ``f(X) -> array``, or
        what ``--model`` accepts (a ``.joblib``/``.pkl``/``.skops`` file, ``module:attr``).
    data : pandas.DataFrame or path
        The rows to explain, or a Parquet file, a folder of them, or a CSV file.
    out : path, optional
        Also write the table there (``.parquet`` or ``.csv``, with its manifest). Default:
        the table is only returned.
    on_note : callable, optional
        Receives the run's notes (the algorithm chosen, rows left out, ...).
    **options
        The options of ``xai explain`` under their configuration names: ``features``,
        ``id_cols``, ``method``, ``algorithm``, ``output``, ``classes``, ``background``
        (a path or a DataFrame), ``background_size``, ``n_samples``, ``errors``,
        ``target_error``, ``kernel_width``,
        ``discretize``, ``num_features``, ``lime_neighbourhood``, ``baseline``, ``steps``,
        ``n_jobs``, ``chunk_size``, ``seed``, ``layout``, ``interactions``,
        ``interactions_top``, ``max_eval_rows``,
        ``on_invalid``, ``backend``, ``scheduler``, ``trust_model``, ``overwrite``.
        Defaults are the command line's.

    Returns
    -------
    pandas.DataFrame
        The attribution table in the requested layout, with the same values as
        ``xai explain`` gives for the same options and seed.
    """
    from xaicli.io.attributions import read_attributions
    from xaicli.runner.explain import run_explain

    unknown = sorted((set(options) - set(FIELD_NAMES)) | (set(options) & _NOT_OPTIONS))
    if unknown:
        accepted = ", ".join(k for k in FIELD_NAMES if k not in _NOT_OPTIONS)
        raise UsageError(f"explain() takes no option {unknown[0]!r}; options are {accepted}")
    with tempfile.TemporaryDirectory(prefix="xai-") as folder:
        work = Path(folder)
        values: dict[str, Any] = dict(options)
        values["model"] = _model_spec(model, work)
        values["data"] = _table_path(data, work / "data.parquet")
        if isinstance(values.get("background"), pd.DataFrame):
            values["background"] = _table_path(values["background"], work / "background.parquet")
        values["out"] = str(out) if out is not None else str(work / "attributions.parquet")
        for key in ("features", "id_cols", "classes"):
            if isinstance(values.get(key), str):
                values[key] = [values[key]]
        config = build_config(values, name=_option_name)
        run_explain(config, on_note=on_note)
        return read_attributions(config.destination.out).frame


def _option_name(key: str) -> str:
    return f"explain({key}=...)"


def _model_spec(model: Any, work: Path) -> str:
    """A path or reference as it is; a model object saved to a file the workers load."""
    if isinstance(model, str | Path):
        return str(model)
    # cloudpickle (which joblib uses too) also saves lambdas and functions defined in a notebook
    import cloudpickle

    path = work / "model.pkl"
    with path.open("wb") as handle:
        cloudpickle.dump(model, handle)
    return str(path)


def _table_path(table: Any, path: Path) -> str:
    if isinstance(table, pd.DataFrame):
        frame = table.copy()
        frame.columns = [str(c) for c in frame.columns]
        frame.to_parquet(path, index=False)
        return str(path)
    if isinstance(table, str | Path):
        return str(table)
    raise UsageError(f"data must be a pandas DataFrame or a path; got {type(table).__name__}")
