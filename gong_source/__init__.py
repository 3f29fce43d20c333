"""gong-logs: an incremental dlt source for Gong's audit logs (`GET /v2/logs`)."""

from gong_source.config import GongCredentials
from gong_source.errors import (
    GongApiError,
    GongAuthError,
    GongConfigError,
    GongEntryError,
    GongError,
    GongResponseError,
)
from gong_source.report import LogTypeReport, RunReport
from gong_source.runner import run_once
from gong_source.settings import LOG_TYPES, LogType
from gong_source.source import gong_source

__all__ = [
    "LOG_TYPES",
    "GongApiError",
    "GongAuthError",
    "GongConfigError",
    "GongCredentials",
    "GongEntryError",
    "GongError",
    "GongResponseError",
    "LogType",
    "LogTypeReport",
    "RunReport",
    "gong_source",
    "run_once",
]
