"""What users see of a run: traces and summaries, built from recorded events."""
