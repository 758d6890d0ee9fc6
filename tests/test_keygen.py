"""``keygen``: a signing key only its owner can read, its public half beside it, and
nothing overwritten unless asked; what it writes signs and verifies."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from mzbuild_async.attest.dsse import KeySigner, envelope, load_public_key, open_envelope
from mzbuild_async.cli.main import main


def test_keygen_writes_a_private_key_and_its_public_half(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "sign.pem"
    assert main(["keygen", "--out", str(key)]) == 0
    said = capsys.readouterr().out
    public = tmp_path / "sign.pub.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert public.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    signer = KeySigner.load(key)
    assert f"key id {signer.keyid}" in said
    assert str(key) in said
    assert str(public) in said
    # What public-key prints is the file keygen wrote.
    assert main(["public-key", "--sign-key", str(key)]) == 0
    assert capsys.readouterr().out == public.read_text()
    signed = envelope(b"{}", "application/vnd.in-toto+json", [signer])
    assert open_envelope(signed, [load_public_key(public)])[1] == b"{}"

    # Never over an existing key unless asked.
    assert main(["keygen", "--out", str(key)]) == 2
    assert "exists; keep it, or pass --force" in capsys.readouterr().err
    assert KeySigner.load(key).keyid == signer.keyid
    assert main(["keygen", "--out", str(key), "--force", "--type", "ed25519"]) == 0
    assert KeySigner.load(key).keyid != signer.keyid
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert not list(tmp_path.glob(".*.tmp"))


def test_keygen_where_it_cannot_write_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keygen", "--out", str(tmp_path / "missing" / "sign.pem")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "keygen: cannot write" in err
