"""Training, validation and test frames recorded as MLflow run inputs.

MLflow's `PandasDataset` infers its schema by checking the type of every value
of every object column, which on a training frame of a million rows costs
seconds per dataset. The column types are those of any few thousand rows, so
the frame is logged as a public `MetaDataset` whose schema is inferred
(`mlflow.models.infer_signature`) from a head sample, with the digest MLflow
computes for the whole frame and a profile that counts every row.
"""
from __future__ import annotations

import warnings

import pandas as pd
from mlflow.data.meta_dataset import MetaDataset

SCHEMA_SAMPLE_ROWS = 2000


class FrameDataset(MetaDataset):
    """A pandas frame's metadata: name, digest, source, schema (from a sample) and row count."""

    def __init__(self, frame: pd.DataFrame, name: str, targets: str | None = None):
        import mlflow
        from mlflow.models import infer_signature

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # integer-column schema hints
            whole = mlflow.data.from_pandas(frame, name=name, targets=targets)  # digest over every row
            schema = infer_signature(frame.head(SCHEMA_SAMPLE_ROWS)).inputs
        self._rows, self._columns, self.targets = len(frame), frame.shape[1], targets
        super().__init__(whole.source, name=name, digest=whole.digest, schema=schema)

    @property
    def profile(self) -> dict:
        return {"num_rows": self._rows, "num_elements": self._rows * self._columns}

    def to_dict(self) -> dict[str, str]:
        import json

        config = super().to_dict()
        config["profile"] = json.dumps(self.profile)
        return config
