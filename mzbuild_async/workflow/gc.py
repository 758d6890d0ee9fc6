"""``gc``: keep exactly what a kept commit can still ask for; remove the rest.

The keep set is computed, not guessed: the commits are the last
``keep_last`` of each branch matching a ``--keep-branch`` pattern (local and
remote-tracking) and every git tag matching a ``--keep-tag`` pattern; each
image's spec at each of them, under every build-option variant asked for, is
fingerprinted from git objects (:mod:`..source.commits`: nothing is checked
out). The repositories scanned are those of every image at those commits (and
at HEAD), at the primary registry and at every mirror. The verdicts and the
deletions are :mod:`..retention`'s.
"""

from __future__ import annotations

import fnmatch
import itertools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..attest.dsse import ENVELOPE_TYPE, IN_TOTO_TYPE
from ..attest.keyless import BUNDLE_TYPE
from ..errors import GitError, InputError, ManifestError, MzbuildError, UsageError, shorten
from ..model.options import Arch, BuildOptions, Profile, Sanitizer
from ..model.spec import TAG_PREFIX, fingerprint_of
from ..registry import ghcr
from ..registry.names import Reference, parse_reference
from ..registry.writer import RegistryWriter
from ..retention.deletions import Deleter, Deletion, apply
from ..retention.policy import Plan, Policy, plan
from ..source.clone import remote_names, remote_refs, shallow_boundaries, shown_remote
from ..source.commits import History, specs_at
from ..source.gitview import _git
from ..source.repository import Repository
from ..support import logs
from .settings import RegistrySettings

#: The artifact types of our attestations (a referrers tag of only these is ours).
OUR_ARTIFACTS = frozenset({ENVELOPE_TYPE, IN_TOTO_TYPE, BUNDLE_TYPE})


@dataclass(frozen=True)
class GcOptions:
    """The keep policy and what to do."""

    keep_branches: tuple[str, ...] = ()
    #: None: every git tag is kept.
    keep_tags: tuple[str, ...] | None = None
    keep_last: int = 20
    keep_younger: float = 24 * 3600.0
    arches: tuple[Arch, ...] = tuple(Arch)
    profiles: tuple[Profile, ...] = tuple(Profile)
    coverage: tuple[bool, ...] = (False, True)
    sanitizers: tuple[Sanitizer, ...] = (Sanitizer.NONE,)
    apply: bool = False
    #: Take the clone's branches and tags as they are, without asking its remotes
    #: whether any are missing or behind (a shallow clone is refused all the same).
    trust_local_refs: bool = False


@dataclass
class KeepSet:
    """What the kept commits ask for."""

    #: Commit -> why it is kept (``main~3``, ``tag v1.2``).
    commits: dict[str, list[str]]
    #: Image name -> its fingerprint tags at those commits.
    tags: dict[str, set[str]] = field(default_factory=dict)
    #: Commits whose images could not be computed (a broken manifest), and why.
    failed: dict[str, str] = field(default_factory=dict)
    variants: int = 0
    seconds: float = 0.0


@dataclass
class GcResult:
    """The keep set, the plan, and (with ``--apply``) what was deleted."""

    keep: KeepSet
    plan: Plan
    deletions: list[Deletion] | None = None


async def _refs(root: Path) -> list[tuple[str, str]]:
    """(kind, name) of every local branch, remote-tracking branch and tag."""
    out = await _git(
        ("git", "for-each-ref", "--format=%(refname)", "refs/heads", "refs/remotes", "refs/tags"),
        root,
    )
    found: list[tuple[str, str]] = []
    for line in out.decode("utf-8", "surrogateescape").splitlines():
        for kind, prefix in (
            ("branch", "refs/heads/"),
            ("remote", "refs/remotes/"),
            ("tag", "refs/tags/"),
        ):
            if line.startswith(prefix) and not line.endswith("/HEAD"):
                found.append((kind, line))
    return found


def _short(ref: str) -> str:
    return ref.split("/", 2)[2]


def _branch_matches(pattern: str, ref: str, kind: str) -> bool:
    name = _short(ref)
    names = [name]
    if kind == "remote" and "/" in name:
        names.append(name.split("/", 1)[1])  # origin/main is branch main too
    return any(fnmatch.fnmatchcase(n, pattern) for n in names)


async def _current_branch(root: Path) -> str:
    try:
        out = await _git(("git", "symbolic-ref", "--quiet", "--short", "HEAD"), root)
    except MzbuildError:
        return ""
    return out.decode().strip()


async def keep_commits(root: Path, options: GcOptions) -> dict[str, list[str]]:
    """The kept commits and why each is kept (an unmatched branch pattern is an error).

    History the policy asks for and the clone lacks is an error too (GitError
    naming the fetch that brings it): a shallow walk, and unless
    ``trust_local_refs``, a branch or tag its remotes have that it lacks or has
    at another commit. Fewer commits would mean fewer images kept.
    """
    refs = await _refs(root)
    patterns = options.keep_branches
    if not patterns:
        current = await _current_branch(root)
        patterns = (current,) if current else ()
    if not options.trust_local_refs:
        await _compare_with_remotes(root, patterns, options)
    shallow = await shallow_boundaries(root)
    commits: dict[str, list[str]] = {}

    async def walk(ref: str, label: str, count: int) -> None:
        out = await _git(("git", "rev-list", f"--max-count={count}", ref, "--"), root)
        walked = out.decode().split()
        # A boundary's parents are missing: the walk stopped there, not at a root.
        # Only the last commit of a full walk needs no parents.
        cut = [c for c in (walked if len(walked) < count else walked[:-1]) if c in shallow]
        if cut:
            raise GitError(
                f"{root}: this clone is shallow: {label}'s history ends at {cut[0][:12]} after"
                f" {walked.index(cut[0]) + 1} of the {count} commits --keep-last asks for, and"
                " gc would delete the images of the rest; fetch the history with `git fetch"
                " --unshallow` (GitHub Actions: actions/checkout with fetch-depth: 0) and run"
                " gc again"
            )
        for i, commit in enumerate(walked):
            commits.setdefault(commit, []).append(f"{label}~{i}" if i else label)

    for pattern in patterns:
        matched = [r for k, r in refs if k != "tag" and _branch_matches(pattern, r, k)]
        if not matched:
            names = sorted({_short(r) for k, r in refs if k != "tag"})
            raise UsageError(
                f"--keep-branch {pattern!r}: no branch matches (branches here:"
                f" {', '.join(names[:10]) or 'none'}); give a branch name or glob"
            )
        for ref in matched:
            await walk(ref, _short(ref), options.keep_last)
    if not options.keep_branches and not patterns:  # a detached HEAD, no branch named
        await walk("HEAD", "HEAD", options.keep_last)
    tag_patterns = options.keep_tags if options.keep_tags is not None else ("*",)
    for pattern in tag_patterns:
        matched = [r for k, r in refs if k == "tag" and fnmatch.fnmatchcase(_short(r), pattern)]
        if not matched and options.keep_tags is not None:
            logs.warning(f"--keep-tag {pattern!r}: no git tag matches")
        for ref in matched:
            out = await _git(("git", "rev-parse", f"{ref}^{{commit}}"), root)
            commits.setdefault(out.decode().strip(), []).append(f"tag {_short(ref)}")
    return commits


async def _compare_with_remotes(root: Path, patterns: Sequence[str], options: GcOptions) -> None:
    """GitError when a remote has a branch matching ``patterns`` or a kept tag that
    this clone lacks or holds at another commit (a ``--no-tags`` or single-branch
    clone, or one not fetched lately)."""
    tag_patterns = options.keep_tags if options.keep_tags is not None else ("*",)
    remotes = await remote_names(root)
    if not remotes:
        return
    here = await _ref_ids(root)
    for remote in remotes:
        there = await remote_refs(root, remote)
        tags = {
            f"refs/tags/{name}": oid
            for name, oid in there.tags.items()
            if any(fnmatch.fnmatchcase(name, p) for p in tag_patterns)
        }
        branches = {
            f"refs/remotes/{remote}/{name}": oid
            for name, oid in there.branches.items()
            if any(fnmatch.fnmatchcase(n, p) for p in patterns for n in (name, f"{remote}/{name}"))
        }
        for refs, what, fetch in (
            (tags, ("tag", "tags"), f"git fetch --tags --force {remote}"),
            (
                branches,
                ("branch", "branches"),
                f"git fetch {remote} '+refs/heads/*:refs/remotes/{remote}/*'",
            ),
        ):
            wrong = sorted(r for r, oid in refs.items() if here.get(r) != oid)
            if not wrong:
                continue
            lacking = sum(1 for r in wrong if r not in here)
            how = (
                "lacks"
                if lacking == len(wrong)
                else "holds at other commits"
                if not lacking
                else "lacks or holds at other commits"
            )
            names = [
                r.removeprefix("refs/tags/").removeprefix(f"refs/remotes/{remote}/") for r in wrong
            ]
            shown = shorten(", ".join(names[:5]) + (" ..." if len(names) > 5 else ""))
            raise GitError(
                f"{root}: the remote {shown_remote(root, remote)} has {len(wrong)}"
                f" {what[len(wrong) > 1]} the keep policy asks for that this clone {how}"
                f" ({shown}), and gc would delete their images; fetch with `{fetch}` and run"
                " gc again"
            )


async def _ref_ids(root: Path) -> dict[str, str]:
    """What every tag and remote-tracking branch holds (one ``git for-each-ref``)."""
    out = await _git(
        ("git", "for-each-ref", "--format=%(objectname) %(refname)", "refs/tags", "refs/remotes"),
        root,
    )
    found: dict[str, str] = {}
    for line in out.decode("utf-8", "surrogateescape").splitlines():
        oid, _, name = line.partition(" ")
        found[name] = oid
    return found


def variants(base: BuildOptions, options: GcOptions) -> list[BuildOptions]:
    """Every combination of the build options asked for."""
    return [
        replace(base, arch=a, profile=p, coverage=c, sanitizer=s)
        for a, p, c, s in itertools.product(
            options.arches, options.profiles, options.coverage, options.sanitizers
        )
    ]


async def keep_set(repo: Repository, options: GcOptions) -> KeepSet:
    """Every image's fingerprint tags at the kept commits (from git objects)."""
    started = time.perf_counter()
    keep = KeepSet(await keep_commits(repo.root, options))
    each = variants(repo.options, options)
    keep.variants = len(each)
    async with History.open(repo.root) as history:
        for commit in keep.commits:
            try:
                found = await specs_at(history, commit, each)
            except (ManifestError, InputError, MzbuildError) as exc:
                keep.failed[commit] = str(exc)
                continue
            for name, specs in found.items():
                keep.tags.setdefault(name, set()).update(
                    TAG_PREFIX + fingerprint_of(s) for s in specs
                )
    for name in repo.images:
        keep.tags.setdefault(name, set())
    keep.seconds = time.perf_counter() - started
    return keep


def repositories(
    settings: RegistrySettings, repo: Repository, names: Sequence[str]
) -> dict[Reference, str]:
    """Each image's repository at the primary and at every mirror -> its image name."""
    publication = settings.publication_for(repo.options)
    found: dict[Reference, str] = {}
    for name in names:
        for destination in publication.destinations:
            ref = parse_reference(destination.spec(name, "latest"))
            found[replace(ref, tag=None)] = name
    return found


async def collect(
    repo: Repository,
    options: GcOptions,
    *,
    cache_dir: Path,
    settings: RegistrySettings,
    deleters: Mapping[str, Deleter] | None = None,
    now: float | None = None,
) -> GcResult:
    """The keep set, the plan over every repository, and the deletions with ``apply``."""
    keep = await keep_set(repo, options)
    for commit, error in keep.failed.items():
        logs.warning(f"commit {commit[:12]}: {error}; its images are not in the keep set")
    where = repositories(settings, repo, sorted(keep.tags))
    specs = frozenset(
        f"{ref.domain}/{ref.repository}:{tag}"
        for ref, name in where.items()
        for tag in keep.tags.get(name, ())
    )
    policy = Policy(specs, options.keep_younger, time.time() if now is None else now, OUR_ARTIFACTS)
    if deleters is None:  # GHCR refuses the standard DELETE: its Packages API instead
        deleters = {ghcr.HOST: ghcr.GhcrPackages(settings.environ)}
    async with settings.session(cache_dir) as client:
        writer = RegistryWriter(client)
        verdicts = await plan(writer, sorted(where, key=str), policy)
        deletions = await apply(writer, verdicts, deleters) if options.apply else None
    return GcResult(keep, verdicts, deletions)
