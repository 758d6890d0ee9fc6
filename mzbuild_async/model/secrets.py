"""Build secrets: ``--secret id=NAME,src=PATH|env=VAR`` and ``[[secret]]`` tables.

buildx's syntax: ``id`` names the secret a ``RUN --mount=type=secret,id=NAME``
reads; its value is a file's content (``src``, also ``source``) or an
environment variable's (``env``). A secret is not an input of any image: it
cannot change an image's identity, only how it is built (a token for a package
registry), so the fingerprint never sees it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from .options import CONFIG_NAME

#: The keys of a ``[[secret]]`` table (the reference in docs/ is made from these).
SECRET_KEYS = {
    "id": "the id a ``RUN --mount=type=secret,id=ID`` reads",
    "src": "a file whose content is the secret (relative to the repository)",
    "env": "an environment variable whose value is the secret (instead of ``src``)",
}
_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")


@dataclass(frozen=True)
class SecretSource:
    """Where one secret's value comes from."""

    id: str
    src: str = ""
    env: str = ""


def parse_secret_flag(text: str) -> SecretSource:
    """``id=NAME,src=PATH`` or ``id=NAME,env=VAR`` (``type=file|env`` is taken too)."""
    pairs: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--secret {text!r}: write id=NAME,src=PATH or id=NAME,env=VARIABLE")
        pairs[key.strip().lower()] = value.strip()
    if "source" in pairs:
        pairs.setdefault("src", pairs.pop("source"))
    kind = pairs.pop("type", "")
    unknown = sorted(set(pairs) - {"id", "src", "env"})
    if unknown:
        raise UsageError(f"--secret {text!r}: unknown key {unknown[0]!r} (id, src, env)")
    source = SecretSource(pairs.get("id", ""), pairs.get("src", ""), pairs.get("env", ""))
    if kind == "env" and source.src and not source.env:
        source = SecretSource(source.id, "", source.src)
    return _checked(source, f"--secret {text!r}")


def secret_tables(tables: object) -> list[SecretSource]:
    """The ``[[secret]]`` tables of the settings file."""
    if not isinstance(tables, list):
        raise UsageError(f"{CONFIG_NAME}: [[secret]] must be an array of tables")
    found: list[SecretSource] = []
    for i, table in enumerate(tables, 1):
        where = f"{CONFIG_NAME}: [[secret]] {i}"
        if not isinstance(table, dict):
            raise UsageError(f"{where}: not a table")
        unknown = sorted(set(table) - set(SECRET_KEYS))
        if unknown:
            raise UsageError(f"{where}: unknown key {unknown[0]!r}; known: id, src, env")
        if not all(isinstance(v, str) for v in table.values()):
            raise UsageError(f"{where}: id, src and env are strings")
        found.append(_checked(SecretSource(table.get("id", ""), table.get("src", ""),
                                           table.get("env", "")), where))  # fmt: skip
    return found


def _checked(source: SecretSource, where: str) -> SecretSource:
    if not _ID.fullmatch(source.id):
        raise UsageError(f"{where}: an id of letters, digits, '_', '.' or '-' is needed")
    if bool(source.src) == bool(source.env):
        raise UsageError(f"{where}: give src=PATH or env=VARIABLE (one of them)")
    return source


def load_secrets(
    sources: Iterable[SecretSource], root: Path, environ: Mapping[str, str]
) -> dict[str, bytes]:
    """Each secret's value by id (a later source of an id wins: flags after the file);
    a file that cannot be read or a variable that is not set is one line."""
    values: dict[str, bytes] = {}
    for source in sources:
        if source.env:
            if source.env not in environ:
                raise UsageError(
                    f"secret {source.id}: the environment variable {source.env} is not set"
                )
            values[source.id] = environ[source.env].encode()
            continue
        path = Path(source.src)
        path = path if path.is_absolute() else root / path
        try:
            values[source.id] = path.read_bytes()
        except OSError as exc:
            raise UsageError(
                f"secret {source.id}: cannot read {path} ({exc.strerror or exc})"
            ) from None
    return values


def parse_ssh_flag(text: str, environ: Mapping[str, str]) -> tuple[str, str]:
    """``--ssh default`` (the agent at ``$SSH_AUTH_SOCK``) or ``--ssh ID=SOCKET``: the id
    a ``RUN --mount=type=ssh,id=ID`` asks for, and the agent's socket (which must be
    there)."""
    agent, sep, socket = text.partition("=")
    agent = agent.strip()
    if not _ID.fullmatch(agent):
        raise UsageError(f"--ssh {text!r}: write default, or ID=SOCKET (an SSH agent's socket)")
    if not sep:
        socket = environ.get("SSH_AUTH_SOCK", "")
        if not socket:
            raise UsageError(
                f"--ssh {agent}: SSH_AUTH_SOCK is not set; start an agent (ssh-agent) or"
                f" give its socket as --ssh {agent}=SOCKET"
            )
    path = Path(socket.strip())
    if not path.is_socket():
        raise UsageError(f"--ssh {text!r}: {path} is not an SSH agent's socket")
    return agent, str(path)
