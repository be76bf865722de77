"""xai report: sections, size, deterministic sampling, chart files, --rows, bad input."""

from __future__ import annotations

import base64
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_wine
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from tests.conftest import run_cli
from xaicli import explain
from xaicli.io.attributions import open_attributions
from xaicli.report.build import MAX_REPORT_BYTES
from xaicli.report.scan import scan_attributions

CLASSES = ("0", "1", "2")


def _wine() -> pd.DataFrame:
    X, y = load_wine(return_X_y=True, as_frame=True)
    X = X[["alcohol", "malic_acid", "flavanoids", "color_intensity", "proline", "hue"]].copy()
    # a text column, explained as one feature and coloured by category code
    X["hue_band"] = pd.cut(X.pop("hue"), [0, 0.8, 1.0, 2.0], labels=["low", "mid", "high"])
    X["hue_band"] = X["hue_band"].astype(str)
    X.insert(0, "wine_id", [f"w{i:03d}" for i in range(len(X))])
    X["target"] = y
    return X


@pytest.fixture(scope="module")
def wine_run(tmp_path_factory):
    """A 3-class forest on wine (one categorical column), its data and attribution table."""
    folder = tmp_path_factory.mktemp("report")
    frame = _wine()
    features = [c for c in frame.columns if c not in ("wine_id", "target")]
    encode = ColumnTransformer(
        [("text", OneHotEncoder(handle_unknown="ignore"), ["hue_band"])], remainder="passthrough"
    )
    model = make_pipeline(
        encode, RandomForestClassifier(n_estimators=15, max_depth=4, random_state=0)
    ).fit(frame[features], frame["target"])
    data = folder / "wine.parquet"
    frame.drop(columns="target").to_parquet(data, index=False)
    attributions = folder / "wine.attributions.parquet"
    explain(model, data, out=attributions, id_cols=["wine_id"], n_jobs=1)
    return {
        "folder": folder,
        "data": data,
        "attributions": attributions,
        "frame": frame,
        "model": model,
    }


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory):
    """One output, no id column (rows joined by position), CSV in and out."""
    folder = tmp_path_factory.mktemp("report_reg")
    frame = _wine().drop(columns=["wine_id", "hue_band", "target"])
    target = frame.pop("alcohol")
    model = RandomForestRegressor(n_estimators=10, max_depth=4, random_state=0).fit(frame, target)
    data = folder / "wine.csv"
    frame.to_csv(data, index=False)
    attributions = folder / "wine.attributions.csv"
    explain(model, data, out=attributions, n_jobs=1)
    return {"folder": folder, "data": data, "attributions": attributions}


def _figure_ids(html: str) -> list[str]:
    return re.findall(r'<figure class="chart" id="([^"]+)"', html)


def _chart_image(html: str, chart_id: str) -> bytes:
    found = re.search(
        rf'id="{chart_id}"><img alt="[^"]*" src="data:image/[a-z+]+;base64,([^"]+)"', html
    )
    assert found, chart_id
    return base64.b64decode(found.group(1))


def test_report_has_a_section_and_every_chart_per_class(wine_run):
    out = wine_run["folder"] / "report.html"
    result = run_cli(
        "report", wine_run["attributions"], "--data", wine_run["data"], "--out", out, "--overwrite"
    )
    assert result.exit_code == 0, result.stderr
    html = out.read_text()
    assert out.stat().st_size < MAX_REPORT_BYTES
    assert not re.search(r"https?://", html)
    assert "<script" not in html and "@import" not in html and "url(" not in html
    ids = _figure_ids(html)
    for label in CLASSES:
        assert f'<section id="output-{label}">' in html
        for kind in ("importance", "beeswarm", "dependence"):
            assert f"{kind}-{label}" in ids
        waterfalls = [i for i in ids if i.startswith(f"waterfall-{label}-")]
        assert len(waterfalls) == 2  # largest and smallest prediction
    assert '<section id="run">' in html
    for fact in ("shap", "tree", "wine_id", "178"):
        assert fact in html
    # 178 rows < the default 2,000 points: every row is drawn, and the page says so
    assert "sample of 178 rows" in html
    assert "Reason codes" not in html
    # SHAP adds up: the waterfall ends at the prediction
    assert b"not additive" not in _chart_image(html, 'waterfall-1-largest_prediction-[^"]+')


def test_sample_is_deterministic_and_independent_of_batches(wine_run):
    source = open_attributions(wine_run["attributions"])
    whole = scan_attributions(source, n_sample=40)
    pieces = scan_attributions(source, n_sample=40, batch_rows=7)
    pd.testing.assert_frame_equal(whole.sample, pieces.sample)
    pd.testing.assert_frame_equal(whole.importance, pieces.importance, rtol=1e-12)
    # 40 input rows, each with all three outputs
    assert whole.sample["wine_id"].nunique() == 40
    assert (whole.sample.groupby("wine_id")["output"].count() == 3).all()
    other_seed = scan_attributions(source, n_sample=40, seed=1)
    assert set(other_seed.sample["wine_id"]) != set(whole.sample["wine_id"])
    for output, rows in whole.extremes.items():
        table = pd.read_parquet(wine_run["attributions"])
        predictions = table.loc[table["output"] == output, "prediction"]
        assert rows["largest"]["prediction"].iloc[0] == predictions.max()
        assert rows["smallest"]["prediction"].iloc[0] == predictions.min()


def test_same_input_same_report_bytes(wine_run):
    pages = []
    for name in ("a.html", "b.html"):
        out = wine_run["folder"] / name
        args = ("--data", wine_run["data"], "--out", out, "--max-points", "50", "--overwrite")
        result = run_cli("report", wine_run["attributions"], *args)
        assert result.exit_code == 0, result.stderr
        pages.append(out.read_bytes())
    assert pages[0] == pages[1]
    assert b"sample of 50 rows" in pages[0]


@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_charts_as_files(wine_run, fmt):
    folder = wine_run["folder"] / f"charts-{fmt}"
    result = run_cli(
        "report", wine_run["attributions"], "--data", wine_run["data"], "--format", fmt,
        "--out", folder,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    files = sorted(p.name for p in folder.iterdir())
    assert f"importance-0.{fmt}" in files and f"beeswarm-2.{fmt}" in files
    assert len(files) == 3 * 5  # per class: importance, beeswarm, dependence, 2 waterfalls
    head = (folder / f"dependence-1.{fmt}").read_bytes()[:200]
    assert head.startswith(b"\x89PNG") if fmt == "png" else b"<svg" in head
    again = run_cli(
        "report", wine_run["attributions"], "--data", wine_run["data"], "--format", fmt,
        "--out", folder,
    )  # fmt: skip
    assert again.exit_code == 2 and "--overwrite" in again.stderr


def test_rows_by_id_get_a_waterfall(wine_run):
    out = wine_run["folder"] / "rows.html"
    result = run_cli(
        "report", wine_run["attributions"], "--data", wine_run["data"], "--out", out,
        "--rows", "w007,w150", "--overwrite",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    ids = _figure_ids(out.read_text())
    for label in CLASSES:
        assert f"waterfall-{label}-requested_row-w007" in ids
        assert f"waterfall-{label}-requested_row-w150" in ids


def test_long_table_reads_as_the_wide_one(wine_run, tmp_path):
    long = tmp_path / "wine.long.parquet"
    explain(
        wine_run["model"], wine_run["data"], out=long, id_cols=["wine_id"], layout="long", n_jobs=1
    )
    wide = scan_attributions(
        open_attributions(wine_run["attributions"]), n_sample=30, requested=["w003"]
    )
    reshaped = scan_attributions(
        open_attributions(long), n_sample=30, requested=["w003"], batch_rows=50
    )
    for name in ("sample", "requested", "importance"):
        pd.testing.assert_frame_equal(getattr(reshaped, name), getattr(wide, name), rtol=1e-9)
    for output, rows in wide.extremes.items():
        for which in ("largest", "smallest"):
            got, expected = reshaped.extremes[output][which], rows[which]
            # a forest's probabilities tie: rows may differ, the extreme values may not
            assert got["prediction"].iloc[0] == pytest.approx(expected["prediction"].iloc[0])
    out = tmp_path / "long.html"
    result = run_cli("report", long, "--data", wine_run["data"], "--out", out)
    assert result.exit_code == 0, result.stderr
    assert len(_figure_ids(out.read_text())) == 3 * 5


def test_one_output_joined_by_row_position_from_csv(regression_run):
    out = regression_run["folder"] / "reg.html"
    result = run_cli(
        "report", regression_run["attributions"], "--data", regression_run["data"],
        "--out", out, "--rows", "3", "--top", "2",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    html = out.read_text()
    ids = _figure_ids(html)
    assert "importance-prediction" in ids and "waterfall-prediction-requested_row-3" in ids
    assert b"sum of 2 other features" in _chart_image(html, "importance-prediction")
    assert "2 other features summed in one bar" in html


def test_reason_code_frequencies_from_reason_columns(wine_run, tmp_path):
    table = pq.read_table(wine_run["attributions"])
    frame = table.to_pandas()
    features = [
        c for c in frame.columns if c not in ("wine_id", "output", "base_value", "prediction")
    ]
    values = frame[features].to_numpy()
    order = np.argsort(-np.abs(values), axis=1, kind="stable")
    names = np.asarray(features)[order]
    for k in range(2):
        table = table.append_column(f"reason_{k + 1}", pa.array(names[:, k]))
    path = tmp_path / "with_reasons.parquet"
    pq.write_table(table, path)
    out = tmp_path / "reasons.html"
    result = run_cli("report", path, "--data", wine_run["data"], "--out", out)
    assert result.exit_code == 0, result.stderr
    html = out.read_text()
    assert "Reason codes" in html
    first = pd.Series(names[(frame["output"] == "0").to_numpy(), 0]).value_counts()
    top_reason, count = first.index[0], first.iloc[0]
    section = html.split('<section id="output-0">')[1].split("</section>")[0]
    assert f'<td>{top_reason}</td><td class="num">{count:,}</td>' in section


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("missing.parquet", "--out", "r.html"), "attribution file not found"),
        (("{att}", "--out", "r.txt"), "not an .html file"),
        (("{att}", "--out", "nowhere/r.html"), "does not exist"),
        (("{att}", "--out", "r.html", "--top", "0"), "--top must be at least 1"),
        (("{att}", "--out", "r.html", "--format", "pdf"), "--format must be one of"),
        (("{att}", "--out", "r.html", "--rows", "w999"), "'w999' is not in"),
        (("{att}", "--out", "r.html", "--data", "{other}"), "lacks column 'alcohol'"),
        (("{long}", "--out", "r.html"), "long table without the base value"),
        (("{att}",), "--out is required"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(wine_run, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    other = tmp_path / "other.parquet"
    wine_run["frame"][["wine_id", "proline"]].to_parquet(other, index=False)
    long = tmp_path / "long.parquet"
    if "{long}" in args:  # LIME's base value (the intercept) differs from row to row
        frame = wine_run["frame"]
        model = RandomForestRegressor(n_estimators=3, random_state=0)
        model.fit(frame[["proline", "flavanoids"]], frame["alcohol"])
        data = frame[["proline", "flavanoids"]]
        explain(model, data, out=long, layout="long", method="lime", n_samples=50, n_jobs=1)
    paths = {"{att}": str(wine_run["attributions"]), "{other}": str(other), "{long}": str(long)}
    filled = [paths.get(a, a) for a in args]
    if "--data" not in filled:
        filled += ["--data", str(wine_run["data"])]
    result = run_cli("report", *filled)
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xai: error: "), result.stderr
    assert message in lines[0]
    assert not (tmp_path / "r.html").exists()


def test_data_defaults_to_the_path_the_run_recorded(wine_run):
    out = wine_run["folder"] / "recorded.html"
    result = run_cli("report", wine_run["attributions"], "--out", out)
    assert result.exit_code == 0, result.stderr
    assert "waterfall-0-largest_prediction" in " ".join(_figure_ids(out.read_text()))


def test_lime_table_waterfall_says_it_is_not_additive(wine_run, tmp_path):
    lime = tmp_path / "lime.parquet"
    explain(wine_run["model"], wine_run["data"], out=lime, id_cols=["wine_id"], method="lime",
            n_samples=200, n_jobs=1)  # fmt: skip
    out = tmp_path / "lime.html"
    result = run_cli("report", lime, "--data", wine_run["data"], "--out", out)
    assert result.exit_code == 0, result.stderr
    image = _chart_image(out.read_text(), 'waterfall-1-largest_prediction-[^"]+')
    assert b"this method is not additive" in image


def test_existing_report_needs_overwrite(wine_run):
    out = wine_run["folder"] / "exists.html"
    out.write_text("keep")
    result = run_cli("report", wine_run["attributions"], "--data", wine_run["data"], "--out", out)
    assert result.exit_code == 2 and "--overwrite" in result.stderr
    assert out.read_text() == "keep"
