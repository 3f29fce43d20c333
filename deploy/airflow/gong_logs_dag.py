"""Airflow recipe: copy into your DAGs folder, with gong-logs installed (`pip install gong-logs[postgres]`).

It uses dlt's `PipelineTasksGroup`, which runs the source as one task, then refreshes the audit views.
Configure the source and the destination the dlt way (Airflow Variables or environment:
SOURCES__GONG__..., DESTINATION__POSTGRES__CREDENTIALS); the DAG processor needs the Gong settings too, as
the source is built when the DAG file is parsed. Workers are ephemeral, so dlt restores the pipeline state
(the per-type progress) and the schema from the destination. Run under Airflow 3.1 in CI (tests/test_airflow.py).
"""

import dlt
import pendulum
from dlt.helpers.airflow_helper import PipelineTasksGroup

from gong_source import gong_source
from gong_source.views import create_audit_views, read_view_columns

try:
    from airflow.sdk import dag, task  # Airflow 3
except ImportError:
    from airflow.decorators import dag, task  # Airflow 2

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
    tasks = PipelineTasksGroup(PIPELINE_NAME, use_data_folder=False, wipe_local_data=True)
    pipeline = dlt.pipeline(pipeline_name=PIPELINE_NAME, dataset_name=DATASET_NAME, destination=DESTINATION)
    tasks.add_run(pipeline, gong_source(), decompose="none", trigger_rule="all_done")

    @task
    def audit_views() -> list[str]:
        """Create the views the loaded columns allow ([sources.gong.view_columns] maps a tenant's names)."""
        loaded = dlt.pipeline(pipeline_name=PIPELINE_NAME, dataset_name=DATASET_NAME, destination=DESTINATION)
        loaded.sync_destination()  # this worker has no local state: the schema comes from the destination
        outcomes = create_audit_views(loaded, read_view_columns())
        for outcome in outcomes:
            print(outcome.summary())
        return [outcome.name for outcome in outcomes if outcome.created]

    tasks >> audit_views()


gong_logs()
