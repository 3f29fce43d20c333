"""Airflow recipe: copy into your DAGs folder, with gong-logs installed (`pip install gong-logs[postgres]`).

One task runs the connector once (`gong_source.run_once`, as the `gong-logs` command does): it refuses a
view_columns mapping the loaded tables cannot feed before any request to Gong, loads until every log type is
complete or the run stops on purpose, then (re)creates the audit views. Configure the source and the
destination the dlt way (Airflow Variables or environment: SOURCES__GONG__..., DESTINATION__POSTGRES__CREDENTIALS).
Workers are ephemeral: each run starts from an empty pipeline folder, and dlt restores the pipeline state (the
per-type progress) and the schema from the destination. Run under Airflow 3.1 in CI (tests/test_airflow.py).
"""

import tempfile
from typing import Any

import dlt
import pendulum

from gong_source import run_once
from gong_source.run_summary import message_lines, summary_dict, summary_lines

try:
    from airflow.exceptions import AirflowFailException, AirflowSkipException
    from airflow.sdk import dag, task  # Airflow 3
except ImportError:
    from airflow.decorators import dag, task  # Airflow 2
    from airflow.exceptions import AirflowFailException, AirflowSkipException

PIPELINE_NAME = "gong_logs"
DATASET_NAME = "gong_logs"
DESTINATION = "postgres"


@dag(
    schedule="17 * * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # runs of one pipeline must not overlap
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=10)},
)
def gong_logs() -> None:
    """Load Gong's audit logs hourly, then (re)create the audit views."""

    @task
    def load_gong_logs() -> dict[str, Any]:
        """Run the connector once; the task fails on an error, and does not retry one that waiting cannot fix."""
        with tempfile.TemporaryDirectory(prefix="gong-logs-") as workdir:  # the state lives in the destination
            pipeline = dlt.pipeline(
                pipeline_name=PIPELINE_NAME, destination=DESTINATION, dataset_name=DATASET_NAME, pipelines_dir=workdir
            )
            report = run_once(pipeline)
        for line in summary_lines(report) + message_lines(report):
            print(line)
        if report.status == "failed" and not report.retry_helps:
            raise AirflowFailException(report.error)  # a configuration or credential error: fix it first
        report.raise_for_failure()
        if report.status == "skipped":
            raise AirflowSkipException(report.error)
        return summary_dict(report)  # "stopped" (exit 75) succeeds: progress is saved, the next run continues

    load_gong_logs()


gong_logs()
