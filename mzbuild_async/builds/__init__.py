"""Building: what each image needs (decisions), the DAG executor (scheduler, its
dispatch), the worker that does the work, the batched cargo build and its staging,
build contexts, and a CI step's markers."""
