"""Train the demo models on the sample tables and save them under sample_data/models/.

Models are built at set-up rather than committed: pickles break across library versions.
"""

import sys
from pathlib import Path

import joblib
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

HERE = Path(__file__).parent


def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)

    penguins = pd.read_parquet(HERE / "penguins.parquet")
    features = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex"]
    prep = ColumnTransformer(
        [("categories", OneHotEncoder(handle_unknown="ignore"), ["island", "sex"])],
        remainder=StandardScaler(),
    )
    model = make_pipeline(prep, LogisticRegression(max_iter=1000))
    model.fit(penguins[features], penguins["species"])
    joblib.dump(model, out_dir / "penguins.joblib")

    cancer = pd.read_parquet(HERE / "breast_cancer.parquet")
    X = cancer.drop(columns=["customer_id", "target"])
    boosted = GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=0)
    boosted.fit(X, cancer["target"])
    joblib.dump(boosted, out_dir / "breast_cancer.joblib")

    diabetes = pd.read_parquet(HERE / "diabetes.parquet")
    X = diabetes.drop(columns=["customer_id", "target"])
    forest = RandomForestRegressor(n_estimators=100, max_depth=8, random_state=0, n_jobs=1)
    forest.fit(X, diabetes["target"])
    joblib.dump(forest, out_dir / "diabetes.joblib")
    print(f"demo models written to {out_dir}", file=sys.stderr)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "models")
