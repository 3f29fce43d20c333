"""The main job: load Gong's audit logs into a warehouse. Also installed as the `gong-logs` command.

python pipelines/gong_logs_pipeline.py            # incremental run, config from .dlt/ or env
python pipelines/gong_logs_pipeline.py --demo     # no Gong account: a local sandbox into DuckDB
python pipelines/gong_logs_pipeline.py --help     # every flag and exit code
"""

import sys

from gong_source.cli import main

if __name__ == "__main__":
    sys.exit(main())
