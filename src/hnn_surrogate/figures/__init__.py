"""Figures, drawn from stored NetCDF artifacts alone."""
