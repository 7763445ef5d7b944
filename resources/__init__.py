"""Resources: the leaf of the import graph; nothing here imports the pipeline's code."""
