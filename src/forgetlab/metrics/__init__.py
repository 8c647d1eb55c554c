"""Metrics: each a function of scores, documented with its formula, direction and source."""
