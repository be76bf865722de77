"""Write the sample tables in this folder from data bundled with scikit-learn and palmerpenguins.

Run once by maintainers; the Parquet files it writes are committed.
"""

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer, load_diabetes

HERE = Path(__file__).parent


def _with_ids(df: pd.DataFrame, prefix: str) -> pd.DataFrame:
    ids = [f"{prefix}-{i:04d}" for i in range(len(df))]
    return pd.concat([pd.DataFrame({"customer_id": ids}), df.reset_index(drop=True)], axis=1)


def main() -> None:
    cancer = load_breast_cancer(as_frame=True)
    frame = cancer.frame.rename(columns=lambda c: c.replace(" ", "_"))
    _with_ids(frame, "bc").to_parquet(HERE / "breast_cancer.parquet", index=False)

    diabetes = load_diabetes(as_frame=True, scaled=False)
    _with_ids(diabetes.frame, "db").to_parquet(HERE / "diabetes.parquet", index=False)

    from palmerpenguins import load_penguins

    penguins = load_penguins().dropna().drop(columns=["year"])
    penguins["body_mass_g"] = penguins["body_mass_g"].astype(np.float64)
    penguins["flipper_length_mm"] = penguins["flipper_length_mm"].astype(np.float64)
    _with_ids(penguins, "pg").to_parquet(HERE / "penguins.parquet", index=False)


if __name__ == "__main__":
    main()
