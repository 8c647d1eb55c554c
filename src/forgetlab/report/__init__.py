"""Plots and reports of finished runs."""
