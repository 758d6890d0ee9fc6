"""A run: acquire, ensure, build or run, from fingerprints to results."""
