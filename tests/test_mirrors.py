"""ensure with mirrors: every registry gets every image, copied registry to registry.

The primary is the token-auth registry (the engine pushes there), the mirror
one over TLS (only our registry client talks to it: the copy never goes
through the engine); skopeo reads both back, independently of our code.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.support.demo import Cli, make_demo
from tests.support.engine import remove_images
from tests.support.registry import Registry, run_registry
from tests.support.skopeo import digest_of
from tests.support.tls import TlsMaterial, make_tls

pytestmark = [pytest.mark.slow, pytest.mark.real, pytest.mark.xdist_group("test_mirrors")]
NAMES = ("demo-base", "demo-lib")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    return make_tls(tmp_path_factory.mktemp("mirror-pki"))


@pytest.fixture(scope="module")
def tls_mirror(tmp_path_factory: pytest.TempPathFactory, pki: TlsMaterial) -> Iterator[Registry]:
    with run_registry(tmp_path_factory.mktemp("reg-mirror"), tls=pki) as registry:
        yield registry


@pytest.fixture(scope="module")
def readonly_mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with run_registry(tmp_path_factory.mktemp("reg-readonly"), readonly=True) as registry:
        yield registry


@pytest.fixture
def cli(
    tmp_path: Path, registries: dict[str, Registry], tls_mirror: Registry, pki: TlsMaterial
) -> Iterator[Cli]:
    """The demo, published to the token registry, mirrored to the TLS one (CA trusted
    through mzbuild-async.toml)."""

    async def engine_up() -> None:
        from tests.support.engine import engine

        await (await engine()).close()

    anyio.run(engine_up)
    run = uuid.uuid4().hex[:10]
    repo = make_demo(tmp_path / "demo")
    (repo / "mzbuild-async.toml").write_text(
        f'[[publish]]\nregistry = "{tls_mirror.host}/mirror{run}"\n\n'
        f'[registry."{tls_mirror.host}"]\nca = "{pki.ca}"\n'
    )
    primary = f"{registries['token'].host}/p{run}"
    yield Cli(repo, primary, tmp_path / "cache")
    remove_images(primary)


def _ensure(cli: Cli, *rest: str) -> tuple[int, dict[str, Any], str]:
    result = cli.run("ensure", *NAMES, "--json", *rest)
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)["images"], result.stderr


def _mirror_ref(cli: Cli, mirror: Registry, spec: str) -> str:
    path = spec.removeprefix(cli.registry + "/")
    return f"{_mirror_of(cli)}/{path}"


def _mirror_of(cli: Cli) -> str:
    text = (cli.repo / "mzbuild-async.toml").read_text()
    return text.split('registry = "', 1)[1].split('"', 1)[0]


def _repo_tag(ref: str) -> tuple[str, str]:
    path = ref.split("/", 1)[1]
    repository, tag = path.rsplit(":", 1)
    return repository, tag


def test_ensure_publishes_to_every_registry_and_copies_what_one_lacks(
    cli: Cli, registries: dict[str, Registry], tls_mirror: Registry
) -> None:
    status, images, stderr = _ensure(cli)
    assert status == 0, stderr
    primary_registry = cli.registry
    mirror_registry = _mirror_of(cli)
    for name in NAMES:
        image = images[name]
        assert image["action"] == "built"
        assert image["registries"] == {primary_registry: "pushed", mirror_registry: "copied"}
        at_mirror = _mirror_ref(cli, tls_mirror, image["spec"])
        # The same manifest in both (skopeo's digests), and the one our output gives.
        assert image["digest"] == digest_of(image["spec"]) == digest_of(at_mirror)

    # The mirror loses demo-lib's tag: the next ensure copies it, builds and pulls nothing.
    lib = images["demo-lib"]
    tls_mirror.delete(*_repo_tag(_mirror_ref(cli, tls_mirror, lib["spec"])))
    # (without the disk tier: a cached "present" has no digest, a HEAD does)
    planned = cli.run("plan", *NAMES, "--workflow", "ensure", "--json", "--tiers", "registry")
    assert planned.returncode == 0, planned.stderr
    plan = json.loads(planned.stdout)["images"]
    assert plan["demo-lib"]["mirrors"] == {mirror_registry: "absent"}
    assert plan["demo-lib"]["copy_to"] == [mirror_registry]
    assert plan["demo-lib"]["digest"] == lib["digest"]  # (from the HEAD the plan sent)
    assert "copy_to" not in plan["demo-base"]
    text_plan = cli.run("plan", *NAMES, "--workflow", "ensure")
    assert f"copies: demo-lib to {mirror_registry}" in text_plan.stdout
    status, again, stderr = _ensure(cli)
    assert status == 0, stderr
    assert {n: again[n]["action"] for n in NAMES} == dict.fromkeys(NAMES, "none")
    assert again["demo-lib"]["registries"] == {
        primary_registry: "present",
        mirror_registry: "copied",
    }
    assert again["demo-base"]["registries"] == {
        primary_registry: "present",
        mirror_registry: "present",
    }
    assert again["demo-lib"]["copied"]["uploaded"] == 0  # the blobs were there: a HEAD each
    assert digest_of(_mirror_ref(cli, tls_mirror, lib["spec"])) == lib["digest"]

    # The primary loses demo-base's tag: copied back from the mirror, not rebuilt.
    base = images["demo-base"]
    registries["token"].delete(*_repo_tag(base["spec"]))
    status, third, stderr = _ensure(cli)
    assert status == 0, stderr
    assert third["demo-base"]["action"] == "none"
    assert third["demo-base"]["registries"] == {
        primary_registry: "copied",
        mirror_registry: "present",
    }
    assert digest_of(base["spec"]) == base["digest"]

    # The summary says it too.
    tls_mirror.delete(*_repo_tag(_mirror_ref(cli, tls_mirror, lib["spec"])))
    text = cli.run("ensure", *NAMES)
    assert text.returncode == 0, text.stderr
    assert f"registries: 1 copied to {mirror_registry} (demo-lib); blobs:" in text.stdout
    quiet = cli.run("ensure", *NAMES)
    assert "registries: every image at all 2" in quiet.stdout


def test_a_mirror_on_the_same_host_mounts_the_blobs(
    cli: Cli, registries: dict[str, Registry]
) -> None:
    token = registries["token"]
    (cli.repo / "mzbuild-async.toml").write_text(
        f'[[publish]]\nregistry = "{token.host}/same{uuid.uuid4().hex[:8]}"\n'
    )
    status, images, stderr = _ensure(cli)
    assert status == 0, stderr
    for name in NAMES:
        copied = images[name]["copied"]
        assert copied["mounted"] >= 2, copied  # config and layer: no byte streamed
        assert (copied["uploaded"], copied["bytes"]) == (0, 0)


def test_an_unreachable_mirror_is_unknown_and_never_published(cli: Cli) -> None:
    (cli.repo / "mzbuild-async.toml").write_text("")
    status, images, stderr = _ensure(
        cli, "--mirror-registry", "127.0.0.1:9/nowhere", "--retries", "1"
    )
    assert status == 1
    for name in NAMES:
        image = images[name]
        assert image["action"] == "failed"
        assert image["registries"]["127.0.0.1:9/nowhere"] == "unknown"
        assert "127.0.0.1:9/nowhere could not tell whether it has" in image["error"]
        assert image["registries"][cli.registry] == "pushed"  # the primary has it
    assert "Traceback" not in stderr


def test_a_mirror_that_refuses_pushes_fails_those_images_only(
    cli: Cli, readonly_mirror: Registry
) -> None:
    (cli.repo / "mzbuild-async.toml").write_text("")
    status, images, stderr = _ensure(cli, "--mirror-registry", f"{readonly_mirror.host}/ro")
    assert status == 1
    for name in NAMES:
        image = images[name]
        assert image["action"] == "failed", image
        assert image["registries"][f"{readonly_mirror.host}/ro"] == "failed"
        assert f"copy to {readonly_mirror.host}/ro failed" in image["error"]
    assert "Traceback" not in stderr


def test_a_mirror_that_says_201_and_keeps_nothing_is_a_failure(
    cli: Cli, registries: dict[str, Registry]
) -> None:
    """A mirror (here a proxy in front of a real registry) that answers every manifest
    PUT with 201, naming no digest, and stores nothing: the copy is read back, found
    missing, and those images fail at that mirror; never `ensure: ok`."""
    from tests.support.faultproxy import Faults, proxy_thread

    (cli.repo / "mzbuild-async.toml").write_text("")
    with proxy_thread(registries["none"].url, Faults(swallow_manifest_puts=True)) as proxy:
        mirror = f"{proxy.host}/swallow{uuid.uuid4().hex[:6]}"
        status, images, stderr = _ensure(cli, "--mirror-registry", mirror, "--retries", "1")
        assert proxy.counts["swallowed"] >= len(NAMES)
    assert status == 1, images
    for name in NAMES:
        image = images[name]
        assert image["action"] == "failed", image
        assert image["registries"][mirror] == "failed"
        assert "naming no digest, but holds nothing there" in image["error"]
        assert image["registries"][cli.registry] == "pushed"
    assert "Traceback" not in stderr


def test_a_pipeline_gives_a_copy_to_a_step_with_the_mirror_flags(
    cli: Cli, tls_mirror: Registry, pki: TlsMaterial
) -> None:
    import yaml

    mirror = f"{tls_mirror.host}/flag{uuid.uuid4().hex[:6]}"
    (cli.repo / "mzbuild-async.toml").write_text(
        f'[registry."{tls_mirror.host}"]\nca = "{pki.ca}"\n'
    )
    status, images, stderr = _ensure(cli, "--mirror-registry", mirror)
    assert status == 0, stderr
    lib = images["demo-lib"]
    tls_mirror.delete(*_repo_tag(f"{mirror}/{lib['spec'].rsplit('/', 1)[1]}"))
    result = cli.run("pipeline", *NAMES, "--format", "github", "--mirror-registry", mirror)
    assert result.returncode == 0, result.stderr
    jobs = yaml.safe_load(result.stdout)["jobs"]
    commands = [step["run"] for job in jobs.values() for step in job["steps"] if "run" in step]
    fingerprint = lib["spec"].rsplit("-", 1)[1]
    (command,) = [c for c in commands if f"--only demo-lib={fingerprint}" in c]
    assert f"--mirror-registry {mirror}" in command
    assert not any("demo-base" in c for c in commands)  # at both registries: nothing to do
