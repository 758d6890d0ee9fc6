"""TLS registries set up as Docker users set them up: certs.d, the config file, mutual TLS.

The real ``docker-registry`` serves HTTPS on loopback with a CA the tests
make; ``check``, ``publish-manifest`` and ``ensure`` (through the real
engine) talk to it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from mzbuild_async.lookup.lookups import Lookups
from mzbuild_async.model.status import Status
from mzbuild_async.registry.client import RegistryClient
from mzbuild_async.registry.tls import TlsSettings
from tests.support.demo import Cli, make_demo
from tests.support.registry import Registry, run_registry
from tests.support.tls import TlsMaterial, make_tls

pytestmark = [pytest.mark.slow, pytest.mark.real, pytest.mark.xdist_group("test_registry_tls")]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    return make_tls(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory: pytest.TempPathFactory, pki: TlsMaterial) -> Iterator[Registry]:
    with run_registry(tmp_path_factory.mktemp("reg-tls"), tls=pki) as registry:
        yield registry


@pytest.fixture(scope="module")
def mtls_registry(tmp_path_factory: pytest.TempPathFactory, pki: TlsMaterial) -> Iterator[Registry]:
    with run_registry(tmp_path_factory.mktemp("reg-mtls"), tls=pki, client_auth=True) as registry:
        yield registry


@pytest.fixture(scope="module")
def stranger_registry(
    tmp_path_factory: pytest.TempPathFactory, pki: TlsMaterial
) -> Iterator[Registry]:
    with run_registry(tmp_path_factory.mktemp("reg-stranger"), tls=pki, stranger=True) as registry:
        yield registry


def certs_d(root: Path, registry: Registry, pki: TlsMaterial, *, client: bool = False) -> Path:
    """A certs.d tree for ``registry`` as Docker reads it: ca.crt (and client.cert/.key)."""
    directory = root / registry.host
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(pki.ca, directory / "ca.crt")
    if client:
        shutil.copy(pki.client_cert, directory / "client.cert")
        shutil.copy(pki.client_key, directory / "client.key")
    return root


def demo_cli(tmp_path: Path, registry: Registry, env: dict[str, str]) -> Cli:
    repo = make_demo(tmp_path / "demo")
    return Cli(repo, f"{registry.host}/tls{uuid.uuid4().hex[:8]}", tmp_path / "cache", env)


def publish_base(cli: Cli, registry: Registry, arches: tuple[str, ...] = ("x86_64",)) -> str:
    """Push a minimal manifest at demo-base's spec for each arch; returns the x86_64 spec."""
    first = ""
    for arch, go in (("x86_64", "amd64"), ("aarch64", "arm64")):
        if arch not in arches:
            continue
        result = cli.run("spec", "demo-base", "--arch", arch)
        assert result.returncode == 0, result.stderr
        spec = result.stdout.strip()
        repo_path, tag = spec.partition("/")[2].rsplit(":", 1)
        registry.push(repo_path, tag, architecture=go)
        first = first or spec
    return first


@pytest.mark.parametrize("where", ["certs.d", "config-file"])
def test_check_through_tls_with_our_ca(
    tmp_path: Path, tls_registry: Registry, pki: TlsMaterial, where: str
) -> None:
    """check over HTTPS on loopback: the CA from certs.d or from mzbuild-async.toml."""
    env = {"MZBUILD_ASYNC_CERTS_D": str(tmp_path / "empty-certs.d")}
    if where == "certs.d":
        env["MZBUILD_ASYNC_CERTS_D"] = str(certs_d(tmp_path / "certs.d", tls_registry, pki))
    cli = demo_cli(tmp_path, tls_registry, env)
    if where == "config-file":
        shutil.copy(pki.ca, cli.repo / "registry-ca.pem")
        (cli.repo / "mzbuild-async.toml").write_text(
            f'[registry."{tls_registry.host}"]\nca = "registry-ca.pem"\n'
        )
    publish_base(cli, tls_registry)
    result = cli.run("check", "demo-base", "demo-lib", "--json", "--tiers", "registry")
    assert result.returncode == 0, result.stderr
    images = json.loads(result.stdout)["images"]
    assert images["demo-base"]["status"] == "present"
    assert images["demo-lib"]["status"] == "absent"


def test_untrusted_certificate_is_one_line_and_never_retried(
    tmp_path: Path, stranger_registry: Registry, pki: TlsMaterial
) -> None:
    """A certificate from an unknown CA: unknown at once, one attempt, saying what to do."""
    root = certs_d(tmp_path / "certs.d", stranger_registry, pki)  # our CA: not theirs
    spec = f"{stranger_registry.host}/some/image:mzbuild-AAAA"

    async def go() -> tuple[Status, str, int]:
        client = RegistryClient(tls=TlsSettings(root))
        engine = Lookups.create(tiers=("registry", "manifest"), client=client, owns_client=True)
        try:
            with anyio.fail_after(5):
                answer = await engine.lookup(spec)
        finally:
            await engine.aclose()
        return answer.status, answer.detail, client.requests[stranger_registry.host]

    status, detail, sent = anyio.run(go)
    assert status is Status.UNKNOWN
    assert "TLS certificate not trusted" in detail
    assert str(root / stranger_registry.host / "ca.crt") in detail
    assert "\n" not in detail
    assert sent == 1  # the ping, tried once: a certificate problem is not transient


def test_mutual_tls(tmp_path: Path, mtls_registry: Registry, pki: TlsMaterial) -> None:
    """A registry that wants client certificates: with them from certs.d every answer is
    right; without them, one line saying which certificate to provide."""
    with_client = certs_d(tmp_path / "with", mtls_registry, pki, client=True)
    without = certs_d(tmp_path / "without", mtls_registry, pki)
    cli = demo_cli(tmp_path, mtls_registry, {"MZBUILD_ASYNC_CERTS_D": str(with_client)})
    publish_base(cli, mtls_registry)
    result = cli.run("check", "demo-base", "demo-lib", "--json", "--tiers", "registry")
    assert result.returncode == 0, result.stderr
    images = json.loads(result.stdout)["images"]
    assert (images["demo-base"]["status"], images["demo-lib"]["status"]) == ("present", "absent")

    cli.env["MZBUILD_ASYNC_CERTS_D"] = str(without)
    result = cli.run("check", "demo-base", "--json", "--tiers", "registry")
    assert result.returncode == 1, result.stderr
    assert result.stdout, result.stderr
    detail = json.loads(result.stdout)["images"]["demo-base"]["detail"]
    assert "client certificate" in detail
    assert "client.cert and client.key" in detail


@pytest.mark.parametrize("mutual", [False, True], ids=["tls", "mtls"])
def test_publish_manifest_through_tls(
    tmp_path: Path,
    tls_registry: Registry,
    mtls_registry: Registry,
    pki: TlsMaterial,
    mutual: bool,
) -> None:
    """publish-manifest writes its index over HTTPS (and mutual TLS) with certs.d."""
    registry = mtls_registry if mutual else tls_registry
    root = certs_d(tmp_path / "certs.d", registry, pki, client=mutual)
    cli = demo_cli(tmp_path, registry, {"MZBUILD_ASYNC_CERTS_D": str(root)})
    publish_base(cli, registry, ("x86_64", "aarch64"))
    result = cli.run(
        "publish-manifest", "v1.0", "demo-base", "--arch", "x86_64", "--arch", "aarch64", "--json"
    )
    assert result.returncode == 0, result.stderr
    repository = cli.registry.split("/", 1)[1]
    with registry._client(f"{repository}/demo-base") as http:
        index = http.get(
            f"/v2/{repository}/demo-base/manifests/v1.0",
            headers={"Accept": "application/vnd.oci.image.index.v1+json"},
        )
    assert index.status_code == 200
    platforms = {m["platform"]["architecture"] for m in index.json()["manifests"]}
    assert platforms == {"amd64", "arm64"}


@pytest.fixture
def docker_certs_d(tls_registry: Registry, pki: TlsMaterial) -> Iterator[Path]:
    """The CA in the engine's own /etc/docker/certs.d for the TLS registry (removed after)."""
    from tests.support.engine import engine

    async def engine_up() -> None:
        await (await engine()).close()

    anyio.run(engine_up)
    root = Path("/etc/docker/certs.d")
    created = not (root / tls_registry.host).exists()
    certs_d(root, tls_registry, pki)
    try:
        yield root
    finally:
        if created:
            shutil.rmtree(root / tls_registry.host, ignore_errors=True)


def test_ensure_through_tls(tmp_path: Path, tls_registry: Registry, docker_certs_d: Path) -> None:
    """ensure builds and pushes through the engine to the TLS registry and confirms the tags
    over HTTPS with the same certs.d (it used to say the registry does not show them)."""
    cli = demo_cli(tmp_path, tls_registry, {"MZBUILD_ASYNC_CERTS_D": str(docker_certs_d)})
    result = cli.run("ensure", "demo-lib", "--json")
    assert result.returncode == 0, result.stderr
    images = json.loads(result.stdout)["images"]
    assert images["demo-lib"]["pushed"] is True
    assert images["demo-base"]["pushed"] is True
    again = cli.run("check", "demo-lib", "--json", "--tiers", "registry")
    assert json.loads(again.stdout)["images"]["demo-lib"]["status"] == "present"
    listed = subprocess.run(
        ["docker", "images", "--format", "{{.Repository}}", cli.registry + "/*"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    if listed:
        subprocess.run(
            ["docker", "rmi", "-f", "--no-prune", *listed], capture_output=True, check=False
        )
