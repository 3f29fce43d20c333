"""A Gong-compatible `/v2/logs` server with deterministic synthetic data, for the demo, tests and benchmarks."""

from gong_source.sandbox.data import SyntheticLogs
from gong_source.sandbox.server import Fault, GongSandbox, Neighbour, SandboxClock

__all__ = ["Fault", "GongSandbox", "Neighbour", "SandboxClock", "SyntheticLogs"]
