"""CI pipelines: the images a run must build, cut into steps, written for Buildkite or
GitHub Actions."""
