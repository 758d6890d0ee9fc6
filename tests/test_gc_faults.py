"""gc against a real docker-registry behind a fault proxy: a tag the listing names
but whose manifest answers 404, a manifest read answering 503, and listed tags no
registry could hold. The repository concerned deletes nothing and is one line; the
others go on; the exit status is 1; never a traceback."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.conftest import MakeRepo
from tests.support.demo import Cli
from tests.support.faultproxy import Faults, proxy_thread
from tests.support.registry import Registry

pytestmark = [pytest.mark.slow, pytest.mark.real]

FILES = {
    "images/a/mzbuild.yml": "name: a\n",
    "images/a/Dockerfile": "FROM scratch\n",
    "images/b/mzbuild.yml": "name: b\n",
    "images/b/Dockerfile": "FROM scratch\n",
}
#: Fingerprint tags no commit asks for (made long ago).
OLD_A = "mzbuild-" + "A" * 32
OLD_B = "mzbuild-" + "B" * 32
LONG_AGO = "2020-01-01T00:00:00Z"


def _gc(repo: Path, registry: str, tmp_path: Path, *flags: str) -> tuple[int, str, str]:
    result = Cli(repo, registry, tmp_path / "cache").run(
        "gc", "--keep-younger", "0s", "--retries", "1", *flags, timeout=120
    )
    return result.returncode, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("faults", "error"),
    [
        pytest.param(
            Faults(missing_manifests=True, only="/a/manifests/release"),
            "tag release is listed but its manifest is not found (404)",
            id="a listed tag answering 404",
        ),
        pytest.param(
            Faults(unavailable_manifests=True, only="/a/manifests/"),
            "server error 503",
            id="manifest reads answering 503",
        ),
        pytest.param(
            Faults(extra_tags=("bad\ntag",), only="/a/tags/list"),
            r"it lists 'bad\ntag', which is no valid tag name",
            id="a listed tag with a newline",
        ),
        pytest.param(
            Faults(extra_tags=("nul\x00tag",), only="/a/tags/list"),
            r"it lists 'nul\x00tag', which is no valid tag name",
            id="a listed tag with a NUL",
        ),
    ],
)
def test_an_unreadable_repository_deletes_nothing_and_the_others_go_on(
    registries: dict[str, Registry],
    make_repo: MakeRepo,
    tmp_path: Path,
    faults: Faults,
    error: str,
) -> None:
    """`a` holds an old fingerprint tag that `release` (not ours) also names: it is
    protected only by `release`, which cannot be read. gc --apply deletes nothing of
    `a`, says so in one line, and still deletes `b`'s old tag (exit status 1)."""
    registry = registries["none"]
    prefix = f"f{uuid.uuid4().hex[:8]}"
    digest = registry.push(f"{prefix}/a", OLD_A, created=LONG_AGO)
    assert registry.push(f"{prefix}/a", "release", created=LONG_AGO) == digest
    registry.push(f"{prefix}/b", OLD_B, architecture="arm64", created=LONG_AGO)
    repo = make_repo(FILES)
    with proxy_thread(registry.url, faults) as proxy:
        status, out, err = _gc(repo, f"{proxy.host}/{prefix}", tmp_path, "--apply")
    assert status == 1, out + err
    assert "Traceback" not in err, err
    assert "ExceptionGroup" not in out + err
    [line] = [x for x in out.splitlines() if x.startswith(f"{proxy.host}/{prefix}/a:")]
    assert line.startswith(f"{proxy.host}/{prefix}/a: could not read it: ")
    assert error in line, line
    assert line.endswith("; nothing deleted there")
    assert registry.digest(f"{prefix}/a", OLD_A) == digest
    assert registry.digest(f"{prefix}/a", "release") == digest
    assert registry.digest(f"{prefix}/b", OLD_B) is None  # the other repository went on
    # Without the fault, the plan keeps a's tag for release's sake.
    status, out, err = _gc(repo, f"{registry.host}/{prefix}", tmp_path, "--json", "--apply")
    assert status == 0, out + err
    verdicts = {t["tag"]: t["reason"] for r in json.loads(out)["repositories"] for t in r["tags"]}
    assert verdicts[OLD_A] == "its manifest is also a kept tag's"
    assert registry.digest(f"{prefix}/a", OLD_A) == digest
