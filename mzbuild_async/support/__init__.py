"""Plumbing every stage uses: retries, rate limits, deadlines, single-flight calls,
logs and progress events. Nothing here knows about images."""
