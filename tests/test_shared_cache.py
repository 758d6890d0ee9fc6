"""Runs that share a cache directory, or cannot write one: right answers, no mess.

Real processes of ``python -m mzbuild_async ensure`` on the demo repository
against the real engine and registry.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from tests.support.demo import Cli

pytestmark = [pytest.mark.slow, pytest.mark.real]


def _json(out: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(out)
    return document


def test_concurrent_runs_build_and_push_each_image_once(demo_cli: Cli) -> None:
    """Four `ensure --all` at once: one build and one push per image, the rest say so.

    An image another process built is reported as `built-elsewhere`, never
    `built`; a tag another process pushed is not pushed again; no lock
    file is left behind.
    """
    cli = demo_cli
    procs = [cli.start("ensure", "--all", "--json", "-v") for _ in range(4)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [err for _, err in outs]
    documents = [_json(out) for out, _ in outs]
    names = set(documents[0]["images"])
    for name in names:
        results = [d["images"][name] for d in documents]
        actions = [r["action"] for r in results]
        assert actions.count("built") <= 1, (name, actions)
        assert set(actions) <= {"built", "built-elsewhere", "none", "pulled"}, (name, actions)
        publish = name != "demo-scratchpad"
        assert sum(r["pushed"] for r in results) == (1 if publish and "built" in actions else 0), (
            name,
            results,
        )
    built = sum(1 for d in documents for r in d["images"].values() if r["action"] == "built")
    assert built == len(names)  # every image was built, by exactly one process
    locks = cli.cache_dir / "locks"
    assert not list(locks.glob("*.lock")), "lock files were left behind"


@pytest.mark.parametrize("how", ["locks-is-a-file", "read-only-mount"])
def test_unwritable_cache_directory_is_one_warning(demo_cli: Cli, how: str) -> None:
    """A cache directory we cannot write: the build goes on, with one warning saying so."""
    cli = demo_cli
    cli.cache_dir.mkdir()
    mounted = False
    if how == "locks-is-a-file":
        (cli.cache_dir / "locks").write_text("not a directory")
    else:
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(cli.cache_dir)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            pytest.fail(f"cannot mount a read-only tmpfs (root is needed): {result.stderr}")
        mounted = True
    try:
        before = set(cli.tmp.glob("mzbuild_async-cache-*"))
        result = cli.run("ensure", "demo-app", "--json")
        after = set(cli.tmp.glob("mzbuild_async-cache-*"))
    finally:
        if mounted:
            subprocess.run(["umount", str(cli.cache_dir)], check=False)
    assert result.returncode == 0, result.stderr
    assert _json(result.stdout)["images"]["demo-app"]["action"] == "built"
    warnings = [line for line in result.stderr.splitlines() if "warning" in line.lower()]
    assert len(warnings) == 1, result.stderr
    assert "cannot write the cache directory" in warnings[0]
    assert after == before, "the private cache directory was not removed"
