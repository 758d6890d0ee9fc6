"""lock: external base images pinned in mzbuild.lock, builds using the pins, drift found."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.support.demo import Cli, commit
from tests.support.engine import BUSYBOX
from tests.support.registry import Registry
from tests.support.skopeo import digest_of
from tests.test_attest import _statement_of

pytestmark = [pytest.mark.slow, pytest.mark.real]


def _docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=False)


def _push_base(tmp: Path, ref: str, marker: str) -> None:
    """A FROM-scratch image with busybox and /marker at ``ref``, pushed."""
    context = tmp / f"ctx-{marker}"
    context.mkdir()
    shutil.copy2(BUSYBOX, context / "busybox")
    (context / "marker").write_text(marker + "\n")
    (context / "Dockerfile").write_text(
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY marker /marker\n"
    )
    # (the classic builder shares identical layers between builds: one another test
    # removes meanwhile is "unable to find image"; building again takes it afresh)
    for _ in range(3):
        built = _docker("build", "-q", "-t", ref, str(context))
        if "unable to find image" not in built.stderr:
            break
    assert built.returncode == 0, built.stderr
    pushed = _docker("push", ref)
    assert pushed.returncode == 0, pushed.stderr


def test_lock_pins_builds_use_the_pins_and_check_finds_drift(
    demo_cli: Cli, registries: dict[str, Registry], tmp_path: Path
) -> None:
    cli = demo_cli
    base = f"{registries['none'].host}/ext{uuid.uuid4().hex[:8]}/base:v1"
    _push_base(tmp_path, base, "one")
    image = cli.repo / "images" / "ext"
    image.mkdir()
    (image / "mzbuild.yml").write_text("name: demo-ext\n")
    (image / "Dockerfile").write_text(f"FROM {base}\nCOPY x.txt /x.txt\n")
    (image / "x.txt").write_text("x\n")
    commit(cli.repo, "an image on an external base")
    demo_base = cli.run("spec", "demo-base").stdout

    locked = cli.run("lock", "demo-ext", "demo-base", "--json")
    assert locked.returncode == 0, locked.stderr
    images = json.loads(locked.stdout)["images"]
    assert images["demo-ext"]["state"] == "written"
    pinned = digest_of(base)
    assert pinned is not None
    assert images["demo-ext"]["pins"] == {base: pinned}
    assert images["demo-base"]["state"] == "none"  # FROM scratch: nothing to pin
    assert (image / "mzbuild.lock").is_file()
    assert not (cli.repo / "images" / "base" / "mzbuild.lock").exists()
    assert cli.run("spec", "demo-base").stdout == demo_base  # no lock: same fingerprint
    check = cli.run("lock", "--check", "demo-ext")
    assert (check.returncode, "demo-ext  unchanged  1 pinned") == (0, check.stdout.strip())

    # The tag moves: the build still uses the pinned digest, and --check says so.
    _push_base(tmp_path, base, "two")
    built = cli.run("ensure", "demo-ext", "--json")
    assert built.returncode == 0, built.stderr
    spec = json.loads(built.stdout)["images"]["demo-ext"]["spec"]
    ran = _docker("run", "--rm", spec, "/bin/busybox", "cat", "/marker")
    assert ran.stdout.strip() == "one", ran.stderr
    # Its provenance and SBOM name the base by the pinned digest, not the tag's new one.
    attested = cli.run("ensure", "demo-ext", "--attest", "--json")
    assert attested.returncode == 0, attested.stderr
    statement, _, _ = _statement_of(spec)
    deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    (entry,) = [d for d in deps if d.get("name") == base]
    assert entry["digest"] == {"sha256": pinned[7:]}
    bom, _, _ = _statement_of(spec, "https://cyclonedx.org/bom")
    assert any(
        c["name"] == base and c["hashes"][0]["content"] == pinned[7:]
        for c in bom["predicate"]["components"]
    )
    drift = cli.run("lock", "--check", "demo-ext")
    assert drift.returncode == 1
    assert f"demo-ext  drift  {base} moved to sha256:" in drift.stdout
    relock = cli.run("lock", "demo-ext")
    assert relock.returncode == 0, relock.stderr
    moved = digest_of(base)
    assert moved is not None
    assert moved in (image / "mzbuild.lock").read_text()


def test_an_unresolvable_base_is_one_line(demo_cli: Cli) -> None:
    cli = demo_cli
    image = cli.repo / "images" / "gone"
    image.mkdir()
    (image / "mzbuild.yml").write_text("name: demo-gone\n")
    (image / "Dockerfile").write_text(f"FROM {cli.registry}/nothing/here:v1\n")
    commit(cli.repo, "an image on a base nobody published")
    result = cli.run("lock", "demo-gone")
    assert result.returncode == 1
    assert result.stdout.startswith(f"demo-gone  failed  {cli.registry}/nothing/here:v1: ")
    assert "Traceback" not in result.stderr
    assert not (image / "mzbuild.lock").exists()


def test_bases_come_through_a_mirror_and_no_spec_changes(
    demo_cli: Cli, registries: dict[str, Registry], tmp_path: Path
) -> None:
    """[mirrors] "docker.io" = "HOST/PREFIX": an unqualified FROM (Docker Hub's official
    image) is pulled from the mirror, as a pull-through cache lays it out; the spec is
    the same with or without the table; lock pins the mirror's digest under the
    Dockerfile's own reference, and the pinned build pulls it from the mirror too."""
    cli = demo_cli
    token = uuid.uuid4().hex[:8]
    mirror = f"{registries['none'].host}/hub{token}"
    _push_base(tmp_path, f"{mirror}/library/bbx{token}:v1", "mirrored")
    image = cli.repo / "images" / "mirr"
    image.mkdir()
    (image / "mzbuild.yml").write_text("name: demo-mirr\n")
    (image / "Dockerfile").write_text(f"FROM bbx{token}:v1\nCOPY x.txt /x.txt\n")
    (image / "x.txt").write_text("x\n")
    commit(cli.repo, "an image on a Docker Hub base")
    plain = cli.run("spec", "demo-mirr").stdout
    settings = cli.repo / "mzbuild-async.toml"
    before = settings.read_text() if settings.exists() else ""
    settings.write_text(before + f'\n[mirrors]\n"docker.io" = "{mirror}"\n')
    assert cli.run("spec", "demo-mirr").stdout == plain  # (a mirror is no fingerprint input)

    built = cli.run("build", "demo-mirr", "--json")
    assert built.returncode == 0, built.stderr
    spec = json.loads(built.stdout)["images"]["demo-mirr"]["spec"]
    ran = _docker("run", "--rm", spec, "/bin/busybox", "cat", "/marker")
    assert ran.stdout.strip() == "mirrored", ran.stderr

    locked = cli.run("lock", "demo-mirr", "--json")
    assert locked.returncode == 0, locked.stderr
    pinned = digest_of(f"{mirror}/library/bbx{token}:v1")
    assert json.loads(locked.stdout)["images"]["demo-mirr"]["pins"] == {f"bbx{token}:v1": pinned}
    _docker("rmi", "-f", spec)
    rebuilt = cli.run("build", "demo-mirr", "--json")
    assert rebuilt.returncode == 0, rebuilt.stderr
    bad = settings.read_text().replace(f'"{mirror}"', '"https://x"')
    settings.write_text(bad)
    refused = cli.run("build", "demo-mirr")
    assert refused.returncode == 2
    assert (
        "mzbuild-async.toml: [mirrors] 'docker.io' must be HOST[:PORT][/PREFIX]" in refused.stderr
    )
