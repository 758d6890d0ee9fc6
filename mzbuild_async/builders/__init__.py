"""What the scheduler runs: the batched cargo build, Docker builds, pulls and pushes."""
