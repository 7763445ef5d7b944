"""Sensor factories; they import asset keys and jobs, never `ml_assets.definitions`."""
