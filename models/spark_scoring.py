"""Batch lead scoring of every contact on Spark, through `mlflow.pyfunc.spark_udf`.

The registered `lead_scoring` version is a LightGBM flavor whose generic pyfunc would score the
trees alone; the model step is more than that (feature encoding, the linear part, calibration,
score knots and tiers: `models.lead_scorer.LeadScorer.predict_arrays`). So the Spark job wraps that
one step in a small `mlflow.pyfunc.PythonModel` (`LeadScorerPyfunc`) whose artifact is the
registered version's own directory, saves it beside the job, and hands it to
`mlflow.pyfunc.spark_udf`: every Spark task loads the champion once and scores its partition's
rows with the same code `inbox score` and `inbox publish` run. Nothing is re-implemented.

Input: the scoring frame `models.datasets.latest_contact_features` reads (every contact's newest
features), written to Parquet and read by Spark in `partitions` partitions; output: contact_id,
probability, score, tier, model_version (`score_with_spark`).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

try:
    import mlflow.pyfunc

    _PythonModel = mlflow.pyfunc.PythonModel
except ImportError:  # pragma: no cover - mlflow is a dependency
    _PythonModel = object

RESULT_TYPE = "probability double, score long, tier string"


class LeadScorerPyfunc(_PythonModel):
    """`LeadScorer.predict_arrays` as an MLflow pyfunc: DataFrame of features -> probability, score, tier."""

    def load_context(self, context):
        from models.lead_scorer import LeadScorer

        self.model = LeadScorer.load(Path(context.artifacts["model"]), version=context.model_config.get("version"))
        self.model.num_threads = 1  # one Spark task per core already

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        p, score, tier = self.model.predict_arrays(model_input)
        return pd.DataFrame({"probability": np.asarray(p, dtype=np.float64), "score": np.asarray(score, dtype=np.int64),
                             "tier": np.asarray(tier, dtype=object).astype(str)})


def spark_session(master: str = "local[2]", app: str = "inbox-batch", shuffle_partitions: int = 4):
    """A Spark session for the batch jobs (local[2] on one machine; a cluster master URL at scale)."""
    import os
    import sys

    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # the workers run this venv's Python
    return (SparkSession.builder.master(master).appName(app)
            .config("spark.pyspark.python", sys.executable)  # the workers run this venv's Python
            .config("spark.pyspark.driver.python", sys.executable)
            .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
            .config("spark.sql.execution.arrow.pyspark.enabled", "true")
            .config("spark.ui.enabled", "false")
            .getOrCreate())


def save_pyfunc(version: str, model_dir: Path, target: Path) -> Path:
    """Save the wrapper around the registered version's directory as a pyfunc model at `target`."""
    import mlflow.pyfunc

    mlflow.pyfunc.save_model(str(target), python_model=LeadScorerPyfunc(), artifacts={"model": str(model_dir)},
                             model_config={"version": str(version)}, code_paths=None,
                             pip_requirements=[])  # the job runs in this environment (env_manager="local")
    return target


def score_with_spark(spark, features: pd.DataFrame | str | Path, version: str, model_dir: Path,
                     partitions: int = 4, workdir: Path | None = None) -> pd.DataFrame:
    """Score `features` (a frame, or a Parquet path of one) with the lead-scoring step on Spark; one row
    per input row: contact_id, probability, score, tier, model_version (sorted by contact_id)."""
    import mlflow.pyfunc
    from pyspark.sql import functions as F

    from models.lead_scorer import LeadScorer

    with tempfile.TemporaryDirectory(dir=workdir, prefix="spark-scoring-") as tmp:
        tmp = Path(tmp)
        if isinstance(features, pd.DataFrame):
            path = tmp / "features.parquet"
            features.to_parquet(path, index=False)
        else:
            path = Path(features)
        columns = LeadScorer.load(model_dir, version=version).encoder.columns
        frame = spark.read.parquet(str(path)).repartition(int(partitions))
        model = save_pyfunc(version, model_dir, tmp / "pyfunc")
        udf = mlflow.pyfunc.spark_udf(spark, str(model), result_type=RESULT_TYPE, env_manager="local")
        scored = frame.select("contact_id", udf(F.struct(*[F.col(c) for c in columns])).alias("r"))
        out = scored.select("contact_id", "r.probability", "r.score", "r.tier").toPandas()
    out["model_version"] = str(version)
    return out.sort_values("contact_id", ignore_index=True)


def champion_inputs(settings) -> tuple[str, Path, pd.DataFrame]:
    """(champion version, its model directory, every contact's newest features) for a batch scoring job."""
    import mlflow

    from models.datasets import latest_contact_features
    from models.lead_scorer import LeadScorer
    from models.loading import model_dir

    mlflow.set_tracking_uri(settings.tracking_uri)
    version = str(mlflow.MlflowClient().get_model_version_by_alias("lead_scoring", "champion").version)
    return version, model_dir("lead_scoring", version, settings.tracking_uri), latest_contact_features(
        LeadScorer.services, settings)


def score_champion_with_spark(settings, spark, partitions: int = 4) -> pd.DataFrame:
    """Every contact's lead score with `models:/lead_scoring@champion` on Spark (every contact of the
    offline store, suppressed ones included: the rows `inbox score` reads before its filter)."""
    version, directory, features = champion_inputs(settings)
    return score_with_spark(spark, features, version, directory, partitions=partitions)
