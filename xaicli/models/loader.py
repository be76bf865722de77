"""Load a model from a file (joblib, pickle, skops, a boosting library's own model file) or a
``module:attr`` reference."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xaicli.errors import ModelLoadError, XaiError
from xaicli.models.native_files import NATIVE_SUFFIXES, load_native_file, missing_library

PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
SKOPS_SUFFIX = ".skops"


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from; small and picklable, so workers can load it themselves."""

    spec: str
    trust: bool = False


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_fingerprint(source: ModelSource) -> str | None:
    """sha256 of the file that defines the model (the model file, or the module's source)."""
    path = _defining_file(source.spec)
    return file_sha256(path) if path is not None and path.is_file() else None


@contextmanager
def model_exits_as(error: type[XaiError], model: str, when: str) -> Iterator[None]:
    """Model code that calls ``sys.exit(n)`` would end xai with code n and no message (or,
    in a worker, take the worker down): make it our error, naming the model and the code."""
    try:
        yield
    except SystemExit as stop:
        raise error(f"the model {model} called sys.exit({stop.code!r}) {when}") from None


def load_model(source: ModelSource) -> Any:
    """Return the model object or callable that ``source`` names."""
    with model_exits_as(ModelLoadError, source.spec, "while loading"):
        return _load(source)


def _load(source: ModelSource) -> Any:
    spec = source.spec
    path = Path(spec)
    if path.suffix.lower() in PICKLE_SUFFIXES + (SKOPS_SUFFIX,) + NATIVE_SUFFIXES:
        if not path.is_file():
            raise ModelLoadError(_not_a_file(spec))
        if path.suffix.lower() in NATIVE_SUFFIXES:
            return load_native_file(path)
        if path.suffix.lower() == SKOPS_SUFFIX:
            return _load_skops(path, trust=source.trust)
        return _load_pickle(path)
    if ":" in spec:
        return _load_reference(spec)
    raise ModelLoadError(
        f"cannot load model {spec!r}: expected a .joblib, .pkl, .pickle or .skops file, "
        "a model file of XGBoost (.json, .ubj), LightGBM (.txt, .lgb, .model) or CatBoost "
        "(.cbm), or module.path:attr / path/to/file.py:attr"
    )


def _not_a_file(path: str) -> str:
    if Path(path).is_dir():
        return f"the model path {path} is a folder; pass the model file inside it"
    return f"model file not found: {path}"


def _load_pickle(path: Path) -> Any:
    import joblib

    try:
        return joblib.load(path)
    except Exception as exc:  # unpickling can raise almost anything
        missing = missing_library(exc, f"model file {path}")
        if missing is not None:
            raise missing from exc
        raise ModelLoadError(
            f"model file {path} does not load ({type(exc).__name__}: {exc}); "
            "was it saved with joblib or pickle by compatible library versions?"
        ) from exc


def _load_skops(path: Path, *, trust: bool) -> Any:
    try:
        import skops.io as sio
    except ImportError as exc:  # pragma: no cover - skops is a dependency
        raise ModelLoadError("loading .skops files needs the skops package") from exc
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:
        raise ModelLoadError(f"model file {path} is not a readable skops file: {exc}") from exc
    if untrusted and not trust:
        raise ModelLoadError(
            f"model file {path} contains types skops does not trust: {', '.join(untrusted)}; "
            "check them, then pass --trust-model to load it"
        )
    try:
        return sio.load(path, trusted=untrusted)
    except Exception as exc:
        raise ModelLoadError(f"model file {path} does not load: {exc}") from exc


def _load_reference(spec: str) -> Any:
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise ModelLoadError(f"model reference {spec!r} must look like module.path:attr")
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise ModelLoadError(_not_a_file(target))
        module_name = f"_xai_model_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]}"
        module = sys.modules.get(module_name)
        if module is None:
            module_spec = importlib.util.spec_from_file_location(module_name, path)
            if module_spec is None or module_spec.loader is None:
                raise ModelLoadError(f"cannot import {target}")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[module_name] = module
            try:
                module_spec.loader.exec_module(module)
            except SystemExit:
                del sys.modules[module_name]
                raise
            except Exception as exc:
                del sys.modules[module_name]
                raise ModelLoadError(f"importing {target} failed: {exc}") from exc
    else:
        try:
            module = importlib.import_module(target)
        except Exception as exc:
            raise ModelLoadError(f"cannot import module {target!r}: {exc}") from exc
    try:
        obj = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError as exc:
        raise ModelLoadError(f"{target} has no attribute {attr!r}") from exc
    return obj


def _defining_file(spec: str) -> Path | None:
    path = Path(spec)
    if path.suffix.lower() in PICKLE_SUFFIXES + (SKOPS_SUFFIX,) + NATIVE_SUFFIXES:
        return path
    target = spec.rpartition(":")[0]
    if target.endswith(".py"):
        return Path(target)
    try:
        found = importlib.util.find_spec(target) if target else None
    except (ImportError, ValueError):
        return None
    return Path(found.origin) if found is not None and found.origin else None
