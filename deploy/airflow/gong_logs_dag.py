"""Airflow recipe: copy into your DAGs folder, with gong-logs installed (`pip install gong-logs[postgres]`).

It checks the view_columns mapping against the loaded tables, runs the source as one task with dlt's
`PipelineTasksGroup`, then refreshes the audit views (a task that fails on a mapping it cannot use).
Configure the source and the destination the dlt way (Airflow Variables or environment:
SOURCES__GONG__..., DESTINATION__POSTGRES__CREDENTIALS); the DAG processor needs the Gong settings too, as
the source is built when the DAG file is parsed. Workers are ephemeral, so dlt restores the pipeline state
(the per-type progress) and the schema from the destination. Run under Airflow 3.1 in CI (tests/test_airflow.py).
"""

import dlt
import pendulum
from dlt.helpers.airflow_helper import PipelineTasksGroup

from gong_source import gong_source
from gong_source.views import checked_view_columns, create_audit_views, view_warnings

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
    tasks.add_run(pipeline, gong_source(), decompose="none")  # runs only when the mapping check passed

    def loaded_pipeline() -> dlt.Pipeline:
        """The pipeline on this worker, which has no local state: dlt restores it from the destination."""
        loaded = dlt.pipeline(pipeline_name=PIPELINE_NAME, dataset_name=DATASET_NAME, destination=DESTINATION)
        loaded.sync_destination()
        return loaded

    @task(retries=0)  # a configuration error does not get better by waiting
    def check_view_columns() -> None:
        """Refuse [sources.gong.view_columns] naming a column a loaded table lacks, before any request to Gong."""
        checked_view_columns(loaded_pipeline())

    @task(retries=0)
    def audit_views() -> list[str]:
        """Create the views the loaded columns allow; fail on a view refused or a mapping that cannot be used."""
        loaded = loaded_pipeline()
        outcomes = create_audit_views(loaded, checked_view_columns(loaded))
        for outcome in outcomes:
            print(outcome.summary())
        problems = view_warnings(outcomes)
        if problems:
            raise ValueError("; ".join(problems))
        return [outcome.name for outcome in outcomes if outcome.created]

    check_view_columns() >> tasks >> audit_views()


gong_logs()
