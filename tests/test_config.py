"""One source of choices and defaults: ExplainConfig's fields, read by the command line,
job files and --save-job alike."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args, get_origin, get_type_hints

import pytest
import typer

from tests.conftest import run_cli
from xaicli.cli.app import app
from xaicli.cli.console import LOG_FORMATS, LogFormat
from xaicli.cli.explain import option_name
from xaicli.config import CHOICES, DEFAULTS, FIELD_NAMES, GROUPS, VALUE_KINDS
from xaicli.jobfile import load_job, write_job

# command-line parameter -> configuration field, where the names differ
PARAM_FIELD = {"id_col": "id_cols", "class_": "classes", "no_discretize": "discretize"}
# parameters about the invocation, not the run
NOT_FIELDS = {"save_job", "log_format", "verbose", "debug"}


def explain_params() -> dict[str, object]:
    command = typer.main.get_command(app).commands["explain"]  # type: ignore[attr-defined]
    return {param.name: param.default for param in command.params}


def test_every_configuration_field_is_an_option_of_xai_explain():
    params = explain_params()
    fields_given = {PARAM_FIELD.get(name, name) for name in params} - NOT_FIELDS
    assert fields_given == set(FIELD_NAMES)


def test_the_command_line_defaults_are_the_configuration_defaults():
    for name, cli_default in explain_params().items():
        if name in NOT_FIELDS:
            continue
        field = PARAM_FIELD.get(name, name)
        if field not in DEFAULTS:  # model, data, out: required or derived
            assert cli_default is None, name
        elif name == "no_discretize":
            assert cli_default is (not DEFAULTS["discretize"])
        elif DEFAULTS[field] == ():  # a list option not given
            assert cli_default is None, name
        elif field == "out_format":  # not given: taken from --out's extension
            assert cli_default is None
        else:
            assert cli_default == DEFAULTS[field], name


def test_choices_are_the_literal_types_of_the_fields():
    hints = {n: h for group in GROUPS.values() for n, h in get_type_hints(group).items()}
    for name, allowed in CHOICES.items():
        assert get_origin(hints[name]) is Literal and get_args(hints[name]) == allowed
    assert set(CHOICES) == {
        "out_format",
        "method",
        "algorithm",
        "output",
        "lime_neighbourhood",
        "layout",
        "on_invalid",
        "reason_direction",
        "backend",
    }
    assert CHOICES["method"] == ("auto", "shap", "lime", "ig", "saliency")


@pytest.mark.parametrize("field", sorted(CHOICES))
def test_a_bad_choice_is_refused_with_the_choices_of_the_field(field):
    result = run_cli(
        "explain", "--model", "m.joblib", "--data", "d.parquet", option_name(field), "bogus"
    )
    assert result.exit_code == 2
    allowed = ", ".join(CHOICES[field])
    assert result.stderr == (
        f"xai: error: {option_name(field)} must be one of {allowed}; got 'bogus'\n"
    )


def test_a_bad_log_format_is_refused_with_its_choices():
    result = run_cli("explain", "--log-format", "xml")
    assert result.exit_code == 2
    assert f"--log-format must be one of {', '.join(LOG_FORMATS)}; got 'xml'" in result.stderr
    assert LOG_FORMATS == get_args(LogFormat)


JOB_KEY = {"out_format": "format"}
WRONG_VALUE = {
    "list": ("1", "a string or a list of strings"),
    "bool": ('"yes"', "true or false"),
    "int": ("1.5", "an integer"),
    "float": ('"wide"', "a number"),
    "str": ("1", "a string"),
}


# fields that take more than their kind: target_error also takes a number
WRONG_FOR_FIELD = {"target_error": ("true", 'a number or a string such as "5%"')}


@pytest.mark.parametrize("field", FIELD_NAMES)
def test_a_job_file_checks_each_key_against_its_field_type(tmp_path, field):
    key = JOB_KEY.get(field, field)
    value, expected = WRONG_FOR_FIELD.get(field) or WRONG_VALUE[VALUE_KINDS[field]]
    job = tmp_path / "job.toml"
    table = {"model": '"m.joblib"', "data": '"d.parquet"', key: value}
    job.write_text("[[explain]]\n" + "".join(f"{k} = {v}\n" for k, v in table.items()))
    result = run_cli("run", job)
    assert result.exit_code == 2
    # messages name the configuration field (format's is out_format)
    assert f"[[explain]] 1: {field} must be {expected}; got " in result.stderr


def test_a_job_file_takes_exactly_the_configuration_keys(tmp_path):
    job = tmp_path / "job.toml"
    job.write_text('[[explain]]\nmodel = "m.joblib"\ndata = "d.parquet"\nbogus = 1\n')
    result = run_cli("run", job)
    assert result.exit_code == 2
    keys = sorted(JOB_KEY.get(name, name) for name in FIELD_NAMES)
    assert f"unknown key 'bogus'; keys are {', '.join(keys)}" in result.stderr


def _valid_value(field: str, tmp_path: Path) -> object:
    if field == "layout":  # reasons (given too) belong to the wide layout
        return "wide"
    if field in CHOICES:
        return CHOICES[field][-1]
    special = {
        "model": str(tmp_path / "m.joblib"),
        "data": str(tmp_path / "d.parquet"),
        "out": str(tmp_path / "o.csv"),
        "background": str(tmp_path / "b.parquet"),
        "background_weights": "w",
        "manifest": str(tmp_path / "o.json"),
        "reason_groups": str(tmp_path / "groups.toml"),
        "baseline": "median",
        "scheduler": "tcp://127.0.0.1:8786",
        "n_jobs": 2,
        "target_error": "5%",
    }
    if field in special:
        return special[field]
    kind = VALUE_KINDS[field]
    return {"list": ["a", "b, c"], "bool": not DEFAULTS[field], "int": 3, "float": 0.5}[kind]


def test_every_key_a_job_file_takes_reaches_the_configuration_and_survives_save_job(tmp_path):
    values = {field: _valid_value(field, tmp_path) for field in FIELD_NAMES}
    lines = ["[[explain]]"]
    for field, value in values.items():
        rendered = repr(value).replace("'", '"').replace("True", "true").replace("False", "false")
        lines.append(f"{JOB_KEY.get(field, field)} = {rendered}")
    job = tmp_path / "job.toml"
    job.write_text("\n".join(lines) + "\n")
    (config,) = load_job(job)
    for field, value in values.items():
        got = config.value(field)
        got = list(got) if isinstance(got, tuple) else got
        assert (str(got) if isinstance(got, Path) else got) == value, field
    saved = tmp_path / "saved.toml"
    write_job(saved, [config])
    (again,) = load_job(saved)
    # --save-job leaves out what is about one invocation (resume applies to every job)
    assert again == config.with_values(quiet=False, overwrite=False)
