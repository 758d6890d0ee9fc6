"""``verify`` on the in-memory seam (workflow/verify, through RegistrySettings'
transport): what ``ensure --attest --sign-key`` attached verifies with its key, not
with another; without keys only the statements are checked; an image never
attested, one not published and a tampered envelope are each a failed verdict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mzbuild_async import BuildOptions, Repository, RunOptions, Workflow, run_workflow
from mzbuild_async.attest.dsse import KeySigner
from mzbuild_async.model.options import Arch
from mzbuild_async.registry.client import RegistryClient
from mzbuild_async.testing import MemoryEngine, MemoryRegistry, no_wait
from mzbuild_async.workflow.verify import load_keys, public_key_pem, verify_images
from tests.conftest import MakeRepo
from tests.support.chain import CHAIN, memory_settings

pytestmark = pytest.mark.anyio

FILES = {
    **{p: t for p, t in CHAIN.items() if not p.startswith("app/")},
    "plain/mzbuild.yml": "name: plain\n",
    "plain/Dockerfile": "FROM scratch\nCOPY p.txt /p.txt\n",
    "plain/p.txt": "p\n",
    "never/mzbuild.yml": "name: never\n",
    "never/Dockerfile": "FROM scratch\nCOPY n.txt /n.txt\n",
    "never/n.txt": "n\n",
}


def _key(path: Path) -> KeySigner:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    return KeySigner.load(path)


async def test_verify_checks_what_ensure_attested(make_repo: MakeRepo, tmp_path: Path) -> None:
    root = make_repo(FILES)
    repo = await Repository.open(
        root, BuildOptions(arch=Arch.X86_64, image_registry="reg.test/kit")
    )
    registry = MemoryRegistry()
    signer = _key(tmp_path / "key.pem")
    cache = tmp_path / "cache"
    async with RegistryClient(transport=registry.transport(), retry=no_wait(2)) as client:
        engine = MemoryEngine(client=client)
        ran = await run_workflow(
            repo, Workflow.ENSURE, ["lib"], cache_dir=cache, docker=engine, client=client,
            options=RunOptions(jobs=1, attest=True, signers=(signer,)),
        )  # fmt: skip
        plain = await run_workflow(
            repo, Workflow.ENSURE, ["plain"], cache_dir=cache, docker=engine, client=client,
            options=RunOptions(jobs=1),
        )  # fmt: skip
    assert ran.ok
    assert plain.ok
    settings = memory_settings(registry.transport())
    (tmp_path / "public.pem").write_text(public_key_pem(str(tmp_path / "key.pem")))
    keys = load_keys([str(tmp_path / "public.pem")])
    names = ["base", "lib", "plain", "never"]

    verdicts = await verify_images(repo, names, keys, cache_dir=cache, settings=settings)
    assert {n: v.ok for n, v in verdicts.items()} == {
        "base": True, "lib": True, "plain": False, "never": False
    }  # fmt: skip
    assert verdicts["lib"].detail.startswith("provenance signed by sha256:")
    assert "inputs match; SBOM signed" in verdicts["lib"].detail
    assert verdicts["plain"].detail == "no provenance attached"
    assert "is not published" in verdicts["never"].detail

    other = _key(tmp_path / "other.pem")
    wrong = await verify_images(repo, ["lib"], [other.public], cache_dir=cache, settings=settings)
    assert not wrong["lib"].ok
    unsigned = await verify_images(repo, ["lib"], [], cache_dir=cache, settings=settings)
    assert unsigned["lib"].ok
    assert "signatures not checked (no --key)" in unsigned["lib"].detail

    # An envelope whose bytes changed under its digest: the registry's answer is refused.
    spec = ran.images["lib"].spec
    host, _, repository = spec.rsplit(":", 1)[0].partition("/")
    for manifest in registry.manifests[(host, repository)].values():
        document = json.loads(manifest.body)
        if document.get("subject") and document.get("layers"):
            layer = document["layers"][0]["digest"]
            registry.blobs[layer] = registry.blobs[layer] + b" "
    tampered = await verify_images(repo, ["lib"], keys, cache_dir=cache, settings=settings)
    assert not tampered["lib"].ok
    assert "does not match its digest" in tampered["lib"].detail
