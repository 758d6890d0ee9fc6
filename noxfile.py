"""nox sessions: tests, lint, typecheck, docs, bench."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck", "docs"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (after installing any missing system programs)."""
    session.install("-e", ".[dev]")
    session.run("scripts/setup-system", external=True)
    session.run(
        "pytest", "-q", "-p", "no:benchmark", "-n", "3", "--dist", "loadgroup", *session.posargs
    )


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the package, tests and benchmarks."""
    session.install("ruff")
    session.run("ruff", "check", "mzbuild_async", "tests", "benchmarks", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package, tests and benchmarks."""
    session.install("-e", ".[dev]")
    session.run("mypy", "--strict")


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation, built as the test command builds it (broken links fail)."""
    session.install("-e", ".[dev]")
    session.run("python", "-m", "mkdocs", "build", "--strict")


@nox.session
def bench(session: nox.Session) -> None:
    """Run the benchmarks; each prints its figures and its ratio to a floor."""
    session.install("-e", ".[dev]")
    session.run("python", "benchmarks/bench_fingerprint.py", *session.posargs)
    session.run("python", "benchmarks/bench_hashing.py")
    session.run("scripts/setup-system", external=True)
    session.run("python", "benchmarks/lookup.py")
    session.run("python", "benchmarks/schedule.py")
    session.run("python", "benchmarks/pipeline.py")
    session.run("python", "benchmarks/e2e.py")
    session.run("python", "benchmarks/engines.py")  # (root: starts extra engines)
