"""The reproduction report writer (reads experiment outputs; never trains)."""

from ._writer import ExperimentRecord, write_report

__all__ = ["ExperimentRecord", "write_report"]
