"""Pure functions of the data layer: reading, landing, validating and profiling complaints; no Dagster."""
