"""Does a provenance statement describe this image, built from this checkout?

Pure checks over an opened statement: the subject is the image's digest, the
input files are exactly the ones (and the content SHA-1s) this checkout's
fingerprint hashed, the parents have the fingerprints this checkout computes. A
statement copied onto another image, or an image built from other inputs,
fails with the first difference named.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..model.spec import fingerprint_of
from .statement import PROVENANCE_TYPE, STATEMENT_TYPE


class Mismatch(Exception):
    """The statement does not describe the image (the message says how)."""


def check_statement(
    statement: Mapping[str, Any],
    digest: str,
    inputs: Mapping[str, str],
    parents: Mapping[str, str],
) -> None:
    """:class:`Mismatch` unless ``statement`` is SLSA provenance of the image at
    ``digest`` built from ``inputs`` (path -> SHA-1) and ``parents`` (name -> spec)."""
    if statement.get("_type") != STATEMENT_TYPE:
        raise Mismatch("not an in-toto v1 statement")
    if statement.get("predicateType") != PROVENANCE_TYPE:
        raise Mismatch(f"predicate {statement.get('predicateType')!r}, not SLSA provenance v1")
    check_subject(statement, digest)
    try:
        dependencies = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    except (KeyError, TypeError):
        raise Mismatch("no resolved dependencies") from None
    recorded, recorded_parents = _recorded(dependencies)
    for path in sorted(set(inputs) | set(recorded)):
        if path not in recorded:
            raise Mismatch(f"input {path} is not in the statement")
        if path not in inputs:
            raise Mismatch(f"the statement has an input {path} this checkout does not")
        if recorded[path] != inputs[path]:
            raise Mismatch(f"input {path} differs (built from {recorded[path][:12]})")
    for name, spec in sorted(parents.items()):
        # (the fingerprint, not the registry: a mirror's copy names the primary's parents)
        if fingerprint_of(recorded_parents.get(name, "")) != fingerprint_of(spec):
            raise Mismatch(
                f"parent {name} differs ({recorded_parents.get(name, 'missing')}, not {spec})"
            )


def _recorded(dependencies: object) -> tuple[dict[str, str], dict[str, str]]:
    """The input files (path -> SHA-1) and parents (name -> spec) a statement records."""
    inputs: dict[str, str] = {}
    parents: dict[str, str] = {}
    for dependency in dependencies if isinstance(dependencies, list) else []:
        if not isinstance(dependency, dict) or not isinstance(dependency.get("name"), str):
            continue
        annotations = dependency.get("annotations") or {}
        digest = dependency.get("digest")
        if isinstance(annotations, dict) and "mzbuild.spec" in annotations:
            parents[dependency["name"]] = str(annotations["mzbuild.spec"])
        elif isinstance(digest, dict) and "sha1" in digest:
            inputs[dependency["name"]] = str(digest["sha1"])
    return inputs, parents


def check_subject(statement: Mapping[str, Any], digest: str) -> None:
    """:class:`Mismatch` unless ``statement`` is about the image at ``digest``."""
    algorithm, _, value = digest.partition(":")
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or not any(
        isinstance(s, dict) and s.get("digest", {}).get(algorithm) == value for s in subjects
    ):
        raise Mismatch(f"its subject is another image, not {digest}")
