"""promote (publish-manifest) over several arches: OCI image indexes over the real registry API."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.demo import Cli, make_demo
from tests.support.registry import Registry

pytestmark = [pytest.mark.slow, pytest.mark.real]
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def _spec(cli: Cli, name: str, arch: str) -> str:
    result = cli.run("spec", name, "--arch", arch)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _manifest(spec: str) -> httpx.Response:
    host, _, rest = spec.partition("/")
    repo, tag = rest.rsplit(":", 1)
    return httpx.get(
        f"http://{host}/v2/{repo}/manifests/{tag}",
        headers={"Accept": f"{OCI_INDEX}, application/vnd.oci.image.manifest.v1+json"},
        timeout=10,
    )


@pytest.fixture
def published(tmp_path: Path, registries: dict[str, Registry]) -> tuple[Cli, Registry]:
    """demo-base and demo-lib published for x86_64 (pushed by the engine would be
    slower; a minimal manifest is enough) and for aarch64 (a minimal arm64 manifest)."""
    registry = registries["none"]
    repo = make_demo(tmp_path / "demo")
    cli = Cli(repo, f"{registry.host}/m{uuid.uuid4().hex[:10]}", tmp_path / "cache")
    for name in ("demo-base", "demo-lib"):
        for arch, go in (("x86_64", "amd64"), ("aarch64", "arm64")):
            spec = _spec(cli, name, arch)
            repo_path, tag = spec.partition("/")[2].rsplit(":", 1)
            registry.push(repo_path, tag, architecture=go)
    return cli, registry


def _publish(cli: Cli, *rest: str) -> subprocess.CompletedProcess[str]:
    return cli.run(
        "publish-manifest", "v1.0", "--arch", "x86_64", "--arch", "aarch64", "--json", *rest
    )


def test_publish_manifest_writes_one_index_per_image(published: tuple[Cli, Registry]) -> None:
    cli, _registry = published
    result = _publish(cli, "demo-base", "demo-lib")
    assert result.returncode == 0, result.stderr
    images: dict[str, Any] = json.loads(result.stdout)["images"]
    assert set(images) == {"demo-base", "demo-lib"}
    for name, outcome in images.items():
        assert outcome["status"] == "created"
        response = _manifest(outcome["target"])
        assert response.status_code == 200
        assert response.headers["content-type"] == OCI_INDEX
        index = response.json()
        assert index["mediaType"] == OCI_INDEX
        platforms = {m["platform"]["architecture"]: m for m in index["manifests"]}
        assert set(platforms) == {"amd64", "arm64"}
        for arch, go in (("x86_64", "amd64"), ("aarch64", "arm64")):
            child = _manifest(_spec(cli, name, arch))
            assert platforms[go]["digest"] == child.headers["docker-content-digest"]
            assert platforms[go]["size"] == len(child.content)
            assert platforms[go]["platform"]["os"] == "linux"
        assert outcome["digest"] == response.headers["docker-content-digest"]

    again = _publish(cli, "demo-base", "demo-lib")
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)["images"]
    assert {o["status"] for o in second.values()} == {"unchanged"}
    assert {n: o["digest"] for n, o in second.items()} == {
        n: o["digest"] for n, o in images.items()
    }


def test_a_missing_arch_fails_that_image_only(published: tuple[Cli, Registry]) -> None:
    cli, _registry = published
    result = _publish(cli, "demo-base", "demo-tools")
    assert result.returncode == 1
    images = json.loads(result.stdout)["images"]
    assert images["demo-base"]["status"] == "created"
    assert "is not published" in images["demo-tools"]["error"]
    assert "ensure --arch" in images["demo-tools"]["error"]


def test_a_wrong_platform_is_refused(published: tuple[Cli, Registry]) -> None:
    cli, registry = published
    # Overwrite demo-lib's aarch64 tag with an amd64 image: the index would lie.
    spec = _spec(cli, "demo-lib", "aarch64")
    repo_path, tag = spec.partition("/")[2].rsplit(":", 1)
    registry.push(repo_path, tag, architecture="amd64")
    result = _publish(cli, "demo-lib")
    assert result.returncode == 1
    assert "built for amd64, not arm64" in json.loads(result.stdout)["images"]["demo-lib"]["error"]


def test_publish_manifest_is_promote(published: tuple[Cli, Registry]) -> None:
    """(Another name for promote: without --arch, this machine's arch, retagged.)"""
    cli, _registry = published
    result = cli.run("publish-manifest", "v1.0", "demo-base", "--json")
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)["images"]["demo-base"]
    assert outcome["kind"] == "tag"
    assert (
        outcome["digest"]
        == _manifest(_spec(cli, "demo-base", "x86_64")).headers["docker-content-digest"]
    )


def test_the_engine_pulls_an_index_over_real_images(
    tmp_path: Path, registries: dict[str, Registry]
) -> None:
    registry = registries["none"]
    repo = make_demo(tmp_path / "demo")
    cli = Cli(repo, f"{registry.host}/m{uuid.uuid4().hex[:10]}", tmp_path / "cache")
    ensured = cli.run("ensure", "demo-base", "--json")
    assert ensured.returncode == 0, ensured.stderr
    spec = json.loads(ensured.stdout)["images"]["demo-base"]["spec"]
    result = cli.run("publish-manifest", "v2", "--arch", "x86_64", "demo-base")
    assert result.returncode == 0, result.stderr
    target = spec.rsplit(":", 1)[0] + ":v2"
    pulled = subprocess.run(
        ["docker", "pull", "-q", target], capture_output=True, text=True, check=False
    )
    assert pulled.returncode == 0, pulled.stderr

    def image_id(ref: str) -> str:
        return subprocess.run(
            ["docker", "image", "inspect", "--format", "{{.Id}}", ref],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    assert image_id(target) == image_id(spec)
    subprocess.run(
        ["docker", "rmi", "-f", "--no-prune", target, spec], capture_output=True, check=False
    )
