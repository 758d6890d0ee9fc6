"""The package's version, below everything (the package root re-exports it)."""

VERSION = "0.1.0"
