"""Pure model code: features, the Keras model, metrics, plots, the blessing; no Dagster."""
