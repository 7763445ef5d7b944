"""Serving the champion: the Ray Serve app, its request schemas and predictor; imports no Dagster."""
