"""Closed-form predictors: an independent oracle. Imports no rules, dynamics or models (numpy/scipy/torch only)."""
