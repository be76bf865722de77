"""Job files: ``[[explain]]`` tables with the keys of ``xai explain``'s options.

Relative paths are resolved from the job file's folder; ``${NAME}`` takes an environment
variable and ``{date}`` today's date (YYYY-MM-DD) in path values. Every table is checked
before any work starts.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from xaicli.config import (
    DEFAULTS,
    FIELD_NAMES,
    PATH_KEYS,
    VALUE_KINDS,
    ExactName,
    ExplainConfig,
    build_config,
)
from xaicli.errors import UsageError
from xaicli.io.destinations import (
    check_absent,
    check_not_input,
    check_writable_folder,
    input_files,
    same_file,
)
from xaicli.io.writer import write_text_atomic
from xaicli.models.loader import PICKLE_SUFFIXES, SKOPS_SUFFIX
from xaicli.models.native_files import NATIVE_SUFFIXES

# job-file key -> configuration field, where they differ
ALIASES = {"format": "out_format", "class": "classes", "id_col": "id_cols"}
KEYS = (set(FIELD_NAMES) - {"out_format"}) | {"format"}
MODEL_FILE_SUFFIXES = (*PICKLE_SUFFIXES, SKOPS_SUFFIX, *NATIVE_SUFFIXES)
# about one invocation, not the job (a job resumes anyway): never saved by --save-job
NOT_SAVED = ("quiet", "resume", "overwrite")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def load_job(path: Path, *, today: dt.date | None = None) -> list[ExplainConfig]:
    """The configurations a job file describes; UsageError naming the file, table and key."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"job file not found: {path}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"job file {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from None
    except IsADirectoryError:
        raise UsageError(f"job file {path} is a folder; give the .toml file") from None
    except OSError as exc:
        raise UsageError(f"cannot read job file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"job file {path} is not valid TOML: {exc}") from exc
    unknown_top = sorted(set(document) - {"explain"})
    if unknown_top:
        raise UsageError(f"{path}: unknown table or key {unknown_top[0]!r}; use [[explain]] tables")
    tables = document.get("explain")
    if not isinstance(tables, list) or not tables:
        raise UsageError(f"{path}: no [[explain]] table")
    date = (today or dt.date.today()).isoformat()
    return [_config(path, i + 1, table, date) for i, table in enumerate(tables)]


def _config(path: Path, number: int, table: dict[str, Any], date: str) -> ExplainConfig:
    where = f"{path} [[explain]] {number}"

    def name(key: str) -> str:
        return f"{where}: {key}"

    values: dict[str, Any] = {"resume": True}  # a scheduled job continues where it stopped
    for key, value in table.items():
        if key not in KEYS and key not in ALIASES:
            raise UsageError(f"{where}: unknown key {key!r}; keys are {', '.join(sorted(KEYS))}")
        field = ALIASES.get(key, key)
        values[field] = _check_type(field, value, name)
    for key in PATH_KEYS:
        if isinstance(values.get(key), str) and values[key] != "-":
            if key == "baseline" and values[key] in ("mean", "median", "zero"):
                continue
            values[key] = _resolve(values[key], path.parent, date, name(key))
    return build_config(values, name=name)


def _check_type(key: str, value: Any, name: Callable[[str], str]) -> Any:
    """``value`` as the configuration field ``key`` takes it (its kind is read from the
    field's type), or UsageError."""

    def bad(expected: str) -> UsageError:
        return UsageError(f"{name(key)} must be {expected}; got {value!r}")

    kind = VALUE_KINDS[key]
    if kind == "list":
        if isinstance(value, str):
            return value  # the comma shorthand, as on the command line
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return [ExactName(v) for v in value]  # list items are names, commas included
        raise bad("a string or a list of strings")
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad("a number")
        return float(value)
    if key == "target_error":  # an absolute target may be written as a number
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise bad('a number or a string such as "5%"')
        return str(value)
    if not isinstance(value, str):
        raise bad("a string")
    return value


def _resolve(value: str, folder: Path, date: str, label: str) -> str:
    def env(match: re.Match[str]) -> str:
        if match.group(1) not in os.environ:
            raise UsageError(f"{label}: environment variable {match.group(1)} is not set")
        return os.environ[match.group(1)]

    text = _ENV.sub(env, value).replace("{date}", date)
    if ":" in text and not text.endswith(MODEL_FILE_SUFFIXES) and not Path(text).exists():
        target, _, attr = text.rpartition(":")
        if target.endswith(".py"):  # path/to/file.py:attr: the file is a path like any other
            script = Path(target).expanduser()
            return f"{script if script.is_absolute() else folder / script}:{attr}"
        return text  # module.path:attr, resolved by the loader
    path = Path(text).expanduser()
    return str(path if path.is_absolute() else (folder / path))


def make_output_folders(config: ExplainConfig) -> None:
    """Create a job's missing output and manifest folders: a scheduled job's first run
    writes to ``out/...-{date}`` before anyone created ``out/``."""
    folders = [Path(config.destination.out).parent] if config.destination.out != "-" else []
    if config.destination.manifest is not None:
        folders.append(config.destination.manifest.parent)
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create the output folder {folder}: {exc.strerror}") from None


def check_job_destination(path: Path, config: ExplainConfig) -> None:
    """Before the run: --save-job may not replace an input, the output, the manifest or
    (without --overwrite) any existing file."""
    what = "job file (--save-job)"
    check_writable_folder(path, what)
    inputs = input_files(
        config.inputs.data, config.inputs.model, config.inputs.background, config.compute.baseline
    )
    check_not_input(path, what, inputs)
    written = [("output", Path(config.destination.out))] if config.destination.out != "-" else []
    if config.destination.manifest is not None:
        written.append(("manifest", config.destination.manifest))
    elif config.destination.out != "-":
        written.append(("manifest", Path(config.destination.out + ".manifest.json")))
    for label, other in written:
        if same_file(path, other):
            raise UsageError(f"{what} {path} is also the {label}; choose another path")
    check_absent(path, what, may_replace=config.destination.overwrite)


def write_job(path: Path, configs: list[ExplainConfig], *, replace: bool = True) -> None:
    """Write configurations as a job file (absolute paths, only non-default values; not
    --overwrite, which is about one invocation, not the job)."""
    lines = ["# xai job file: run with `xai run " + path.name + "`", ""]
    for config in configs:
        lines.append("[[explain]]")
        for key in FIELD_NAMES:
            value = config.value(key)
            if key in NOT_SAVED or (key in DEFAULTS and value == DEFAULTS[key]):
                continue
            if (
                key in PATH_KEYS
                and value is not None
                and str(value) != "-"
                and not _is_reference(str(value))
            ):
                if key != "baseline" or str(value) not in ("mean", "median", "zero"):
                    value = str(Path(value).resolve())
            elif key == "model" and _is_reference(str(value)):
                target, _, attr = str(value).rpartition(":")
                if target.endswith(".py"):  # read from the job file's folder: make it absolute
                    value = f"{Path(target).resolve()}:{attr}"
            job_key = "format" if key == "out_format" else key
            lines.append(f"{job_key} = {_toml(value)}")
        lines.append("")
    write_text_atomic(path, "\n".join(lines), replace=replace)


def _is_reference(value: str) -> bool:
    return ":" in value and not Path(value).exists() and not value.endswith(MODEL_FILE_SUFFIXES)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string
