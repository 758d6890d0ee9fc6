"""gc against a real docker-registry: the demo built over commits on two branches,
a release tag and a hand-made index; the dry run, --apply, the registry's own
garbage collector, a race with ensure, and bad input.

The expected keep set comes from checking each commit out (a git worktree) and
asking ``spec --all`` there: not from the git-object walk gc itself uses.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests.conftest import git
from tests.support.demo import Cli, commit, make_demo
from tests.support.engine import remove_images
from tests.support.registry import Registry, require, run_registry
from tests.support.schemas import validate
from tests.support.skopeo import raw_manifest, skopeo

pytestmark = [pytest.mark.slow, pytest.mark.real, pytest.mark.xdist_group("test_gc")]
APP = "demo-app"
#: The images an ensure of demo-app builds.
BUILT = ("demo-app", "demo-lib", "demo-tools", "demo-base")


@dataclass
class Built:
    """The demo built at a series of commits."""

    cli: Cli
    registry: Registry
    storage: Path
    config: Path
    #: Label -> commit.
    commits: dict[str, str] = field(default_factory=dict)
    #: Commit -> image -> spec (from a checkout of that commit).
    specs: dict[str, dict[str, str]] = field(default_factory=dict)
    #: demo-app's aarch64 spec at c1 (under the promoted index only).
    arm64: str = ""


def _specs_at(cli: Cli, commit_id: str, where: Path) -> dict[str, str]:
    """``spec --all --json`` in a worktree checked out at the commit (the oracle)."""
    git(cli.repo, "worktree", "add", "-q", "--detach", str(where), commit_id)
    try:
        other = Cli(where, cli.registry, cli.cache_dir)
        result = other.run("spec", "--all", "--json")
        assert result.returncode == 0, result.stderr
        specs: dict[str, str] = json.loads(result.stdout)
        return specs
    finally:
        git(cli.repo, "worktree", "remove", "--force", str(where))


def _ensure(cli: Cli, *images: str) -> None:
    result = cli.run("ensure", *images)
    assert result.returncode == 0, result.stderr


def _edit(cli: Cli, path: str, text: str, message: str) -> str:
    (cli.repo / path).write_text(text)
    commit(cli.repo, message)
    return git(cli.repo, "rev-parse", "HEAD").strip()


def _tags(registry: Registry, repo: str) -> set[str]:
    response = httpx.get(f"{registry.url}/v2/{repo}/tags/list", timeout=10)
    if response.status_code == 404:
        return set()
    return set(response.json().get("tags") or [])


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """main: c0 (tagged v1), c1, c2 (app.sh edits), c3 (lib.txt edit); feature: f1
    from c2; c2 and c3 signed (attestations); ``release-1`` promoted at c1 over
    x86_64 (built) and aarch64 (a synthetic manifest): an index."""
    from tests.support.engine import engine

    async def engine_up() -> None:
        await (await engine()).close()

    anyio.run(engine_up)
    base = tmp_path_factory.mktemp("gc")
    with run_registry(base / "registry") as registry:
        prefix = f"{registry.host}/g{uuid.uuid4().hex[:8]}"
        cli = Cli(make_demo(base / "demo"), prefix, base / "cache")
        done = Built(cli, registry, base / "registry" / "data", base / "registry" / "config.yml")
        app_sh = (cli.repo / "images/app/app.sh").read_text()
        try:
            done.commits["c0"] = git(cli.repo, "rev-parse", "HEAD").strip()
            git(cli.repo, "tag", "v1")
            _ensure(cli, APP)
            key = _signing_key(base / "sign.pem")
            for n in (1, 2):
                done.commits[f"c{n}"] = _edit(
                    cli, "images/app/app.sh", app_sh + f"# edit {n}\n", f"c{n}"
                )
                _ensure(cli, APP, *(("--sign-key", str(key)) if n == 2 else ()))
            git(cli.repo, "checkout", "-q", "-b", "feature")
            done.commits["f1"] = _edit(cli, "images/app/app.sh", app_sh + "# feature\n", "f1")
            _ensure(cli, APP)
            git(cli.repo, "checkout", "-q", "main")
            lib = (cli.repo / "images/lib/lib.txt").read_text()
            done.commits["c3"] = _edit(cli, "images/lib/lib.txt", lib + "more\n", "c3")
            _ensure(cli, APP, "--sign-key", str(key))
            for label, commit_id in done.commits.items():
                done.specs[commit_id] = _specs_at(cli, commit_id, base / f"wt-{label}")
            done.arm64 = _promote_at(cli, registry, done.commits["c1"], base / "wt-promote")
            yield done
        finally:
            remove_images(prefix)


def _signing_key(path: Path) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def _promote_at(cli: Cli, registry: Registry, commit_id: str, where: Path) -> str:
    """At ``commit_id``: an arm64 manifest (synthetic, made 30 days ago) at demo-app's
    aarch64 spec, then ``promote release-1`` over both arches (an index). Returns the
    arm64 spec."""
    git(cli.repo, "worktree", "add", "-q", "--detach", str(where), commit_id)
    try:
        there = Cli(where, cli.registry, cli.cache_dir)
        spec = there.run("spec", APP, "--arch", "aarch64").stdout.strip()
        repo, tag = spec.split("/", 1)[1].rsplit(":", 1)
        registry.push(repo, tag, architecture="arm64", created="2026-01-01T00:00:00Z")
        result = there.run("promote", "release-1", APP, "--arch", "x86_64", "--arch", "aarch64")
        assert result.returncode == 0, result.stdout + result.stderr
        return spec
    finally:
        git(cli.repo, "worktree", "remove", "--force", str(where))


def _fingerprint_tag(spec: str) -> str:
    return spec.rsplit(":", 1)[1]


def _gc(cli: Cli, *flags: str) -> dict[str, Any]:
    result = cli.run("gc", "--keep-branch", "main", "--keep-last", "1", "--json", *flags)
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    validate(document, "gc.json")
    return document


def _deleted(document: dict[str, Any]) -> set[str]:
    return {
        f"{r['repository']}:{t['tag']}"
        for r in document["repositories"]
        for t in r["tags"]
        if t["action"] == "delete"
    }


def test_the_age_guard_keeps_young_images(built: Built) -> None:
    at = {label: built.specs[commit_id] for label, commit_id in built.commits.items()}
    document = _gc(built.cli, "--keep-younger", "7d")
    assert not _deleted(document)
    verdicts = {
        f"{r['repository']}:{t['tag']}": t for r in document["repositories"] for t in r["tags"]
    }
    for label in ("c2", "f1"):
        assert verdicts[at[label][APP]]["reason"] == "younger than the age guard"


def test_gc_keeps_exactly_what_kept_commits_ask_for_then_deletes_the_rest(built: Built) -> None:
    cli, c = built.cli, built.commits
    at = {label: built.specs[commit_id] for label, commit_id in c.items()}
    before = _du(built.storage)
    plan = _gc(cli, "--keep-younger", "0s")
    # Kept: main's last commit (c3) and the v1 tag (c0); c1's app (both arches) is
    # under the promoted index; c2's attestations go with c2's image, c3's stay.
    assert set(plan["keep"]["commits"]) == {c["c3"], c["c0"]}
    assert plan["keep"]["commits"][c["c0"]] == ["tag v1"]
    verdicts = {f"{r['repository']}:{t['tag']}": t for r in plan["repositories"] for t in r["tags"]}
    app_repo = at["c1"][APP].rsplit(":", 1)[0]
    attested = {
        label: f"{app_repo}:{verdicts[at[label][APP]]['digest'].replace(':', '-')}"
        for label in ("c2", "c3")
    }
    assert _deleted(plan) == {at["c2"][APP], at["f1"][APP], attested["c2"]}
    assert verdicts[attested["c2"]]["reason"] == "its image is deleted"
    artifacts = verdicts[attested["c2"]]["artifacts"]
    assert len(artifacts) == 2  # the provenance and the SBOM
    for digest in artifacts:
        assert json.loads(raw_manifest(f"{app_repo}@{digest}"))["subject"]
    assert verdicts[attested["c3"]]["reason"] == "its image is kept"
    for spec in (at["c1"][APP], built.arm64):
        assert verdicts[spec]["reason"] == "its manifest is also a kept tag's"
    assert verdicts[f"{app_repo}:release-1"]["reason"] == "not ours"
    assert plan["freed_bytes"] > 0
    # Nothing deleted by the dry run.
    repo_path = at["c2"][APP].split("/", 1)[1].rsplit(":", 1)[0]
    assert _fingerprint_tag(at["c2"][APP]) in _tags(built.registry, repo_path)

    applied = _gc(cli, "--keep-younger", "0s", "--apply")
    outcomes = {t["tag"]: t.get("outcome") for r in applied["repositories"] for t in r["tags"]}
    assert outcomes[_fingerprint_tag(at["c2"][APP])] == "deleted"
    left = _tags(built.registry, repo_path)
    assert _fingerprint_tag(at["c2"][APP]) not in left
    assert _fingerprint_tag(at["f1"][APP]) not in left
    for label in ("c3", "c0", "c1"):
        assert _fingerprint_tag(at[label][APP]) in left, label
    # Every kept spec still pulls and runs; the index still resolves.
    remove_images(cli.registry)
    for label in ("c3", "c0"):
        for name in BUILT:
            raw_manifest(at[label][name])
    subprocess.run(["docker", "pull", "-q", at["c3"][APP]], check=True, capture_output=True)
    ran = subprocess.run(
        ["docker", "run", "--rm", at["c3"][APP]], check=True, capture_output=True, text=True
    )
    assert ran.stdout.strip()
    for arch in ("amd64", "arm64"):
        platform = skopeo(
            "inspect",
            "--tls-verify=false",
            "--override-arch",
            arch,
            "--format",
            "{{.Architecture}}",
            f"docker://{app_repo}:release-1",
        )
        assert platform.stdout.strip() == arch, platform.stderr
    # The attestations of the deleted image are gone, not only their tag.
    assert attested["c2"].rsplit(":", 1)[1] not in left
    for digest in artifacts:
        gone = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{app_repo}@{digest}")
        assert gone.returncode != 0
        assert "manifest unknown" in gone.stderr
    assert json.loads(raw_manifest(attested["c3"]))["manifests"]  # c3's are all there
    # The registry's own collector frees about what the dry run said.
    subprocess.run(
        [require("docker-registry"), "garbage-collect", str(built.config)],
        check=True,
        capture_output=True,
    )
    freed = before - _du(built.storage)
    print(f"garbage-collect freed {freed} bytes; the dry run estimated {plan['freed_bytes']}")
    assert freed > 0
    # Within 10% (the registry also drops small link files the estimate does not count).
    assert abs(freed - plan["freed_bytes"]) <= max(0.1 * plan["freed_bytes"], 4096), (
        freed,
        plan["freed_bytes"],
    )


def test_bad_input_is_one_line(built: Built, tmp_path: Path) -> None:
    cli = built.cli
    result = cli.run("gc", "--keep-branch", "no-such-*")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "--keep-branch 'no-such-*': no branch matches" in result.stderr
    result = cli.run("gc", "--keep-younger", "soon")
    assert result.returncode == 2
    assert "'soon' is not a duration" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_shallow_or_tagless_clone_deletes_nothing(built: Built, tmp_path: Path) -> None:
    """In a `git clone --depth 1` (GitHub Actions' default checkout) `gc --keep-last 3
    --apply` would keep one commit and delete the images of the other two: it refuses
    (exit 2, one line naming the fetch) and the registry keeps every tag; once the
    history is fetched, the keep set is the full clone's."""
    cli, c = built.cli, built.commits
    clone = tmp_path / "clone"
    git(
        tmp_path,
        "clone",
        "-q",
        "--depth",
        "1",
        "--branch",
        "main",
        f"file://{cli.repo}",
        str(clone),
    )
    shallow = Cli(clone, cli.registry, cli.cache_dir)
    app_repo = built.specs[c["c3"]][APP].split("/", 1)[1].rsplit(":", 1)[0]
    before = _tags(built.registry, app_repo)
    flags = ("--keep-branch", "main", "--keep-last", "3", "--keep-younger", "0s", "--apply")
    result = shallow.run("gc", *flags)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "has 1 tag the keep policy asks for that this clone lacks (v1)" in result.stderr
    assert "git fetch --tags --force origin" in result.stderr
    git(clone, "fetch", "-q", "--tags", "origin")
    result = shallow.run("gc", *flags)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "this clone is shallow: main's history ends at" in result.stderr
    assert "git fetch --unshallow" in result.stderr
    assert _tags(built.registry, app_repo) == before
    git(clone, "fetch", "-q", "--unshallow")
    result = shallow.run("gc", *flags[:-1], "--json")
    assert result.returncode == 0, result.stderr
    kept = json.loads(result.stdout)["keep"]["commits"]
    assert set(kept) == {c["c3"], c["c2"], c["c1"], c["c0"]}


def test_a_registry_that_refuses_delete_is_one_line(tmp_path: Path) -> None:
    with run_registry(tmp_path / "registry", deletion=False) as registry:
        prefix = f"{registry.host}/n{uuid.uuid4().hex[:8]}"
        cli = Cli(make_demo(tmp_path / "demo"), prefix, tmp_path / "cache")
        try:
            _ensure(cli, "demo-base")
            (cli.repo / "images/base/Dockerfile").write_text(
                (cli.repo / "images/base/Dockerfile").read_text() + "\n# edit\n"
            )
            commit(cli.repo, "edit")
            result = cli.run(
                "gc",
                "--keep-branch",
                "main",
                "--keep-last",
                "1",
                "--keep-younger",
                "0",
                "--apply",
            )
            assert result.returncode == 1, result.stdout + result.stderr
            assert f"error: {registry.host} refuses to delete manifests" in result.stdout
            assert "Traceback" not in result.stderr
            # Nothing was lost.
            assert _tags(registry, prefix.split("/", 1)[1] + "/demo-base")
        finally:
            remove_images(prefix)


def test_gc_racing_ensure_loses_nothing_ensure_pushed(built: Built, tmp_path: Path) -> None:
    """An ensure of a commit no policy keeps, while gc --apply runs again and again:
    every image the ensure pushed is there at the end (the age guard, and the HEAD
    and tag list right before each delete)."""
    cli = built.cli
    worktree = tmp_path / "racer"
    git(cli.repo, "worktree", "add", "-q", "-b", f"race-{uuid.uuid4().hex[:6]}", str(worktree))
    try:
        (worktree / "images/tools/tools.txt").write_text(f"race {time.time()}\n")
        commit(worktree, "race")
        racer = Cli(worktree, cli.registry, tmp_path / "cache")
        started = subprocess.Popen(
            racer.args("ensure", APP, "--json"),
            env=racer.environ(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        rounds = 0
        while started.poll() is None or rounds == 0:
            result = cli.run("gc", "--keep-branch", "main", "--keep-last", "1", "--apply")
            assert result.returncode == 0, result.stderr
            rounds += 1
        print(f"gc --apply ran {rounds} times while ensure ran")
        _out, err = started.communicate()
        assert started.returncode == 0, err
        specs = _specs_at(racer, git(worktree, "rev-parse", "HEAD").strip(), tmp_path / "wt")
        for name in BUILT:
            raw_manifest(specs[name])
    finally:
        git(cli.repo, "worktree", "remove", "--force", str(worktree))
