"""What a run says is published is true: against a real registry, engine and proxy.

A fingerprint tag is pushed only over a definite "absent" of the run (never
over "the registry could not tell"); a "present" kept on disk is a hint that
``ensure`` confirms, that any 404 evicts, and that a pull meeting "manifest
unknown" replaces with a build.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.demo import Cli
from tests.support.engine import remove_images
from tests.support.faultproxy import FaultProxy, proxy_thread
from tests.support.pool import Sleepy, make_sleepy_repo
from tests.support.registry import Registry

pytestmark = [pytest.mark.slow, pytest.mark.real]


@dataclass
class Setup:
    """A one-image repository whose registry is a fault proxy in front of a real one."""

    cli: Cli
    proxy: FaultProxy
    registry: Registry
    prefix: str

    def spec(self, out: str, name: str = "solo") -> str:
        spec: str = json.loads(out)["images"][name]["spec"]
        return spec

    def digest(self, spec: str) -> str | None:
        """The digest at ``spec``'s tag, asked of the registry itself (not the proxy)."""
        repo, _, tag = spec.split("/", 1)[1].rpartition(":")
        return self.registry.digest(repo, tag)

    def delete(self, spec: str) -> None:
        repo, _, tag = spec.split("/", 1)[1].rpartition(":")
        self.registry.delete(repo, tag)


def _rmi(spec: str) -> None:
    subprocess.run(
        ["docker", "rmi", "-f", "--no-prune", spec], capture_output=True, check=False, timeout=60
    )


@pytest.fixture
def setup(tmp_path: Path, registries: dict[str, Registry]) -> Iterator[Setup]:
    registry = registries["none"]
    repo = make_sleepy_repo(tmp_path / "repo", [Sleepy("solo", (), 0), Sleepy("kid", ("solo",), 0)])
    # One attempt per request: the faults below are not transient.
    (repo / "mzbuild-async.toml").write_text("[lookup]\nretries = 1\n")
    with proxy_thread(registry.url) as proxy:
        prefix = f"{proxy.host}/truth"
        cli = Cli(repo, prefix, tmp_path / "cache")
        yield Setup(cli, proxy, registry, prefix)
        remove_images(prefix)


def test_an_unknown_answer_is_never_pushed_over(setup: Setup, tmp_path: Path) -> None:
    """The registry answers 503 to manifest reads: ensure builds, pushes nothing, says why
    in one line, exit 1; the published tag keeps its digest."""
    first = setup.cli.run("ensure", "solo", "--json")
    assert first.returncode == 0, first.stderr
    spec = setup.spec(first.stdout)
    published = setup.digest(spec)
    assert published is not None

    _rmi(spec)  # a new machine: the image is not local, and a rebuild has another digest
    setup.proxy.faults.unavailable_manifests = True
    fresh = Cli(setup.cli.repo, setup.prefix, tmp_path / "fresh-cache")
    result = fresh.run("ensure", "solo", "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    image = json.loads(result.stdout)["images"]["solo"]
    assert image["action"] == "failed"
    assert not image["pushed"]
    assert "the registry could not tell" in image["error"]
    assert "nothing pushed" in image["error"]
    assert "Traceback" not in result.stderr
    assert setup.digest(spec) == published  # not overwritten

    # With the disk cache of the first run, ensure does not take "present" on trust.
    result = setup.cli.run("ensure", "solo", "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    image = json.loads(result.stdout)["images"]["solo"]
    assert image["reason"].endswith("registry could not tell"), image
    assert "nothing pushed" in image["error"]
    assert setup.digest(spec) == published


def test_a_deleted_tag_is_published_again(setup: Setup) -> None:
    """A tag deleted from the registry (a retention policy): ensure finds out, although
    the disk cache says present, and builds and pushes it again; the 404 evicts the
    cache entry, so check no longer says present."""
    first = setup.cli.run("ensure", "solo", "--json")
    assert first.returncode == 0, first.stderr
    spec = setup.spec(first.stdout)
    setup.delete(spec)
    _rmi(spec)

    checked = setup.cli.run(
        "check", "solo", "--json", "--tiers", "memory,disk,registry"
    )  # check takes the cache's word...
    answer = json.loads(checked.stdout)["images"]["solo"]
    assert (answer["status"], answer["tier"]) == ("present", "disk"), answer
    assert answer["detail"].startswith("seen present ")
    checked = setup.cli.run("check", "solo")
    assert "not confirmed" in checked.stdout

    result = setup.cli.run("ensure", "solo", "--json")  # ...ensure does not
    assert result.returncode == 0, result.stderr
    image = json.loads(result.stdout)["images"]["solo"]
    assert (image["action"], image["pushed"], image["tier"]) == ("built", True, "registry")
    assert setup.digest(spec) is not None


@pytest.mark.anyio
async def test_a_404_evicts_the_cache_entry_at_once(
    tmp_path: Path, registries: dict[str, Registry]
) -> None:
    """A confirming lookup that meets a 404 drops the disk entry: the next run that
    trusts the cache does not find it there."""
    from mzbuild_async.lookup.disk import DiskTier
    from mzbuild_async.lookup.lookups import Lookups
    from mzbuild_async.model.status import Status

    registry = registries["none"]
    registry.push("evict/solo", "mzbuild-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    spec = f"{registry.host}/evict/solo:mzbuild-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    async with Lookups.create(tiers=("memory", "disk", "registry"), cache_dir=tmp_path) as eng:
        assert (await eng.lookup(spec)).tier == "registry"
    assert await DiskTier(tmp_path).seen(spec) is not None
    registry.delete("evict/solo", "mzbuild-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    async with Lookups.create(tiers=("memory", "disk", "registry"), cache_dir=tmp_path) as eng:
        trusted = await eng.lookup(spec)  # (not confirming: the cache answers)
    assert (trusted.status, trusted.tier) == (Status.PRESENT, "disk")
    async with Lookups.create(
        tiers=("memory", "disk", "registry"), cache_dir=tmp_path, confirm=True
    ) as eng:
        confirmed = await eng.lookup(spec)
    assert (confirmed.status, confirmed.tier) == (Status.ABSENT, "registry")
    assert await DiskTier(tmp_path).seen(spec) is None
    async with Lookups.create(tiers=("memory", "disk", "registry"), cache_dir=tmp_path) as eng:
        assert (await eng.lookup(spec)).tier == "registry"


def test_a_pull_meeting_manifest_unknown_builds_instead(setup: Setup) -> None:
    """acquire trusts the disk cache; a pull that meets "manifest unknown" evicts the
    entry and builds the image instead of failing, and later runs are not poisoned."""
    first = setup.cli.run("ensure", "kid", "--json")
    assert first.returncode == 0, first.stderr
    solo, kid = setup.spec(first.stdout, "solo"), setup.spec(first.stdout, "kid")
    setup.delete(solo)
    setup.delete(kid)
    _rmi(kid)
    _rmi(solo)

    result = setup.cli.run("acquire", "kid", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    images = json.loads(result.stdout)["images"]
    assert images["kid"]["action"] == "built", images
    assert images["solo"]["action"] == "built", images
    assert "no longer has it" in result.stderr
    assert "Traceback" not in result.stderr
    checked = setup.cli.run("check", "kid", "--json", "--tiers", "memory,disk,registry")
    answer = json.loads(checked.stdout)["images"]["kid"]
    assert (answer["status"], answer["tier"]) == ("absent", "registry"), answer


def test_a_lying_head_does_not_poison_later_runs(setup: Setup) -> None:
    """A HEAD that says 200 for a tag whose GET is 404: the pull fails, the run builds
    the image instead, and the lie is not kept for the next run."""
    spec_of = setup.cli.run("spec", "solo")
    assert spec_of.returncode == 0, spec_of.stderr
    spec = spec_of.stdout.strip()
    assert setup.digest(spec) is None
    setup.proxy.faults.head_present = True
    result = setup.cli.run("acquire", "solo", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["images"]["solo"]["action"] == "built"
    setup.proxy.faults.head_present = False
    checked = setup.cli.run("check", "solo", "--json", "--tiers", "memory,disk,registry")
    answer = json.loads(checked.stdout)["images"]["solo"]
    assert (answer["status"], answer["tier"]) == ("absent", "registry"), answer
