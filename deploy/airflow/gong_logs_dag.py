"""Airflow recipe: copy into your DAGs folder, with gong-logs installed (`pip install gong-logs[postgres]`).

It uses dlt's `PipelineTasksGroup`, which runs the source as one task. Configure the source and the
destination the dlt way (Airflow Variables or environment: SOURCES__GONG__..., DESTINATION__POSTGRES__...).
Workers are ephemeral, so dlt restores the pipeline state (the per-type progress) from the destination.
"""

import dlt
import pendulum
from airflow.decorators import dag
from dlt.helpers.airflow_helper import PipelineTasksGroup

from gong_source import gong_source


@dag(
    schedule="17 * * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # runs of one pipeline must not overlap
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=10)},
)
def gong_logs() -> None:
    """Load Gong's audit logs hourly."""
    tasks = PipelineTasksGroup("gong_logs", use_data_folder=False, wipe_local_data=True)
    pipeline = dlt.pipeline(pipeline_name="gong_logs", dataset_name="gong_logs", destination="postgres")
    tasks.add_run(pipeline, gong_source(), decompose="none", trigger_rule="all_done")


gong_logs()
