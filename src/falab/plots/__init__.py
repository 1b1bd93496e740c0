"""Figures: pure functions from arrays to PNG files (matplotlib, Agg backend). Never trains."""
