"""The reproduction report writer (reads experiment measurements and decided claims; never trains or decides)."""

from ..experiments._engine import ExperimentRecord
from ._writer import claim_rows, write_report

__all__ = ["ExperimentRecord", "claim_rows", "write_report"]
