"""promote: release tags over the real registry API, read back with skopeo."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.demo import Cli, commit, make_demo
from tests.support.registry import Registry
from tests.support.skopeo import digest_of, raw_manifest, skopeo

pytestmark = [pytest.mark.slow, pytest.mark.real]
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def _raw(ref: str) -> str:
    return raw_manifest(ref)


def _digest(ref: str) -> str:
    digest = digest_of(ref)
    assert digest is not None, ref
    return digest


def _spec(cli: Cli, name: str, arch: str = "x86_64") -> str:
    result = cli.run("spec", name, "--arch", arch)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _publish(cli: Cli, registry: Registry, names: tuple[str, ...]) -> None:
    """Minimal per-arch manifests at each image's specs (the engine would be slower)."""
    for name in names:
        for arch, go in (("x86_64", "amd64"), ("aarch64", "arm64")):
            repo_path, tag = _spec(cli, name, arch).partition("/")[2].rsplit(":", 1)
            registry.push(repo_path, tag, architecture=go)


@pytest.fixture
def released(tmp_path: Path, registries: dict[str, Registry]) -> tuple[Cli, Registry]:
    registry = registries["none"]
    repo = make_demo(tmp_path / "demo")
    cli = Cli(repo, f"{registry.host}/p{uuid.uuid4().hex[:10]}", tmp_path / "cache")
    _publish(cli, registry, ("demo-base", "demo-lib"))
    return cli, registry


def _promote(cli: Cli, *rest: str) -> tuple[int, dict[str, Any], str]:
    result = cli.run("promote", *rest, "--json")
    images = json.loads(result.stdout)["images"] if result.stdout.strip() else {}
    return result.returncode, images, result.stderr


def test_one_arch_is_a_retag_that_keeps_the_bytes_and_digest(
    released: tuple[Cli, Registry],
) -> None:
    cli, _registry = released
    status, images, stderr = _promote(cli, "v1.2.3", "--arch", "x86_64", "demo-base", "demo-lib")
    assert status == 0, stderr
    for name in ("demo-base", "demo-lib"):
        spec = _spec(cli, name)
        outcome = images[name]
        assert (outcome["status"], outcome["kind"]) == ("created", "tag")
        assert outcome["target"] == spec.rsplit(":", 1)[0] + ":v1.2.3"
        assert _raw(outcome["target"]) == _raw(spec)
        assert outcome["digest"] == _digest(outcome["target"]) == _digest(spec)
        assert outcome["manifests"]["x86_64"]["platform"] == "linux/amd64"


def test_several_arches_make_an_index_skopeo_reads(released: tuple[Cli, Registry]) -> None:
    cli, _registry = released
    status, images, stderr = _promote(
        cli, "v1.2.3", "--arch", "x86_64", "--arch", "aarch64", "demo-base"
    )
    assert status == 0, stderr
    outcome = images["demo-base"]
    assert outcome["kind"] == "index"
    index = json.loads(_raw(outcome["target"]))
    assert index["mediaType"] == OCI_INDEX
    by_arch = {m["platform"]["architecture"]: m["digest"] for m in index["manifests"]}
    assert by_arch == {
        "amd64": _digest(_spec(cli, "demo-base", "x86_64")),
        "arm64": _digest(_spec(cli, "demo-base", "aarch64")),
    }
    assert outcome["digest"] == _digest(outcome["target"])
    arm = skopeo(
        "inspect", "--tls-verify=false", "--override-arch", "arm64", "--format",
        "{{.Architecture}}", f"docker://{outcome['target']}",
    )  # fmt: skip
    assert arm.stdout.strip() == "arm64", arm.stderr


def test_a_release_tag_never_moves_but_latest_does(released: tuple[Cli, Registry]) -> None:
    cli, registry = released
    repo_path = _spec(cli, "demo-base").partition("/")[2].rsplit(":", 1)[0]
    other = registry.push(repo_path, "v1.2.3", architecture="arm64")  # other content
    status, images, _ = _promote(cli, "v1.2.3", "demo-base")
    assert status == 1
    message = images["demo-base"]["error"]
    ours = _digest(_spec(cli, "demo-base"))
    assert f"demo-base:v1.2.3 already names {other}, not {ours}" in message
    assert registry.digest(repo_path, "v1.2.3") == other  # nothing written

    # The same content is unchanged, whatever the tag.
    registry.push(repo_path, "v1.2.4", architecture="amd64")
    status, images, stderr = _promote(cli, "v1.2.4", "demo-base")
    assert (status, images["demo-base"]["status"]) == (0, "unchanged"), stderr

    # latest moves (a moving tag), and --force moves any tag.
    registry.push(repo_path, "latest", architecture="arm64")
    status, images, stderr = _promote(cli, "latest", "demo-base")
    assert (status, images["demo-base"]["status"]) == (0, "updated"), stderr
    assert registry.digest(repo_path, "latest") == ours
    status, images, stderr = _promote(cli, "v1.2.3", "demo-base", "--force")
    assert (status, images["demo-base"]["status"]) == (0, "updated"), stderr
    assert registry.digest(repo_path, "v1.2.3") == ours


def test_moving_tags_come_from_the_settings_file(released: tuple[Cli, Registry]) -> None:
    cli, registry = released
    (cli.repo / "mzbuild-async.toml").write_text('[promote]\nmoving = ["nightly"]\n')
    repo_path = _spec(cli, "demo-base").partition("/")[2].rsplit(":", 1)[0]
    registry.push(repo_path, "nightly", architecture="arm64")
    registry.push(repo_path, "latest", architecture="arm64")
    status, _, stderr = _promote(cli, "nightly", "demo-base")
    assert status == 0, stderr
    status, images, _ = _promote(cli, "latest", "demo-base")  # no longer a moving one
    assert status == 1
    assert "never moves" in images["demo-base"]["error"]


def test_mainline_keeps_only_mainline_images(
    tmp_path: Path, registries: dict[str, Registry]
) -> None:
    registry = registries["none"]
    repo = make_demo(tmp_path / "demo")
    manifest = repo / "images" / "lib" / "mzbuild.yml"
    manifest.write_text(manifest.read_text() + "mainline: false\n")
    commit(repo, "demo-lib is not mainline")
    cli = Cli(repo, f"{registry.host}/p{uuid.uuid4().hex[:10]}", tmp_path / "cache")
    _publish(cli, registry, ("demo-base", "demo-lib", "demo-app", "demo-hello"))
    status, images, stderr = _promote(cli, "v2.0.0", "--all", "--mainline")
    assert "demo-lib" not in images
    assert {"demo-base", "demo-app", "demo-hello"} <= set(images)
    assert "demo-scratchpad" not in images  # publish: false
    assert images["demo-base"]["status"] == "created", stderr
    status, images, stderr = _promote(cli, "v2.0.0", "demo-lib", "demo-base", "--mainline")
    assert (status, set(images)) == (0, {"demo-base"}), stderr


def test_an_invalid_tag_is_refused_before_any_request(tmp_path: Path) -> None:
    repo = make_demo(tmp_path / "demo")
    closed = "127.0.0.1:9"  # (nothing listens: a request would fail, not this way)
    cli = Cli(repo, f"{closed}/p", tmp_path / "cache")
    for tag in ("v1/2", "v1:2", "a" * 129, ".hidden", "v1 2"):
        result = cli.run("promote", tag, "demo-base")
        assert result.returncode == 2, result.stderr
        assert "is not a valid tag" in result.stderr
        assert "Traceback" not in result.stderr
        assert "127.0.0.1:9" not in result.stderr


def test_to_copies_to_other_registries_first_then_tags_there(
    released: tuple[Cli, Registry], registries: dict[str, Registry]
) -> None:
    cli, _registry = released
    other = f"{registries['token'].host}/to{uuid.uuid4().hex[:8]}"
    status, images, stderr = _promote(cli, "v3.0.0", "demo-base", "--to", other)
    assert status == 0, stderr
    spec = _spec(cli, "demo-base")
    at = images["demo-base"]["registries"]
    assert set(at) == {cli.registry, other}
    copied_spec = f"{other}/demo-base:{spec.rsplit(':', 1)[1]}"
    # The fingerprint tag was copied (same digest), then tagged there too.
    assert _digest(copied_spec) == _digest(spec)
    assert at[other]["target"] == f"{other}/demo-base:v3.0.0"
    assert _raw(at[other]["target"]) == _raw(spec)
    assert at[other]["digest"] == at[cli.registry]["digest"] == _digest(spec)


@pytest.mark.parametrize(
    "tag",
    [
        pytest.param("mzbuild-" + "A" * 32, id="a fingerprint tag"),
        pytest.param("mzbuild-" + "A" * 32 + ".failed", id="a failure marker"),
        pytest.param("sha256-" + "0" * 64, id="a referrers tag"),
        pytest.param("sha256-" + "0" * 64 + ".sig", id="cosign's signature tag"),
    ],
)
def test_the_tools_own_tag_names_are_never_release_tags(
    released: tuple[Cli, Registry], tag: str
) -> None:
    """`promote --force mzbuild-<fingerprint>` would move a commit's fingerprint tag
    onto another image (and `ensure` at that commit would call it published): it is
    refused in one line, exit 2, --force or not, and nothing is written."""
    cli, registry = released
    spec = _spec(cli, "demo-base")
    repo_path, fingerprint_tag = spec.partition("/")[2].rsplit(":", 1)
    if tag.startswith("mzbuild-"):
        tag = fingerprint_tag + tag.removeprefix("mzbuild-" + "A" * 32)
    before = registry.digest(repo_path, fingerprint_tag)
    for force in ((), ("--force",)):
        result = cli.run("promote", tag, "demo-base", "--arch", "aarch64", *force)
        assert result.returncode == 2, result.stdout + result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
        assert "is a name of the tool's own tags" in result.stderr
        assert "never a release tag, --force or not" in result.stderr
    assert registry.digest(repo_path, fingerprint_tag) == before
    assert registry.digest(repo_path, tag) in (None, before)


def test_two_promotes_racing_for_one_tag_never_both_say_created(
    released: tuple[Cli, Registry], tmp_path: Path
) -> None:
    """Two promotes of different content (amd64, arm64) to one release tag, both
    finding it free, both writing it (the proxy holds their writes until both are
    there): the one whose content the tag does not hold fails, naming both digests,
    and hands over no reference; the other says created, and the tag holds its."""
    import subprocess

    from tests.support.faultproxy import Faults, proxy_thread

    cli, registry = released
    repo_path = _spec(cli, "demo-base").partition("/")[2].rsplit(":", 1)[0]
    digests = {a: _digest(_spec(cli, "demo-base", a)) for a in ("x86_64", "aarch64")}
    faults = Faults(put_barrier=2, only="/manifests/v9.9.9", gate_seconds=60)
    with proxy_thread(registry.url, faults) as proxy:
        racer = Cli(cli.repo, f"{proxy.host}/{cli.registry.split('/', 1)[1]}", cli.cache_dir)
        started = {}
        for arch in digests:
            outputs = tmp_path / f"outputs-{arch}"
            outputs.touch()
            env = {**racer.environ(), "GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(outputs)}
            started[arch] = subprocess.Popen(
                racer.args("promote", "v9.9.9", "demo-base", "--arch", arch, "--json"),
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        done = {arch: (p.communicate(timeout=120), p.returncode) for arch, p in started.items()}
    holds = registry.digest(repo_path, "v9.9.9")
    [winner] = [a for a in digests if digests[a] == holds]
    [loser] = [a for a in digests if a != winner]
    (out, err), status = done[winner]
    assert status == 0, err
    assert json.loads(out)["images"]["demo-base"]["status"] == "created"
    (out, err), status = done[loser]
    assert status == 1, out + err
    message = json.loads(out)["images"]["demo-base"]["error"]
    assert "demo-base:v9.9.9 was moved by someone else" in message
    assert digests[loser] in message
    assert digests[winner] in message
    assert digests[loser] not in (tmp_path / f"outputs-{loser}").read_text()
    assert digests[winner] in (tmp_path / f"outputs-{winner}").read_text()
