"""Building: what each image needs (plan), the DAG executor (scheduler), the
worker that does the work, the batched cargo build, build contexts and
multi-arch indexes."""
