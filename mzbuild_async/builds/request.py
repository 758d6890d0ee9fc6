"""What one build is given besides its context: its build args, the files a
``copy`` pre-image brings in, and the secrets and SSH agents its Dockerfile mounts."""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import DockerBuildError
from ..model.dockerfile import secret_mounts, ssh_mounts
from ..model.manifest import Copy
from ..source.repository import Repository


def build_args(repo: Repository, name: str) -> dict[str, str]:
    """The manifest's build args plus those the original always passes."""
    options = repo.options
    return {
        **repo.image(name).manifest.build_args,
        "BUILD_PROFILE": options.profile.name,
        "ARCH_GCC": str(options.arch),
        "ARCH_GO": options.arch.go,
        "CI_SANITIZER": str(options.sanitizer),
    }


def mounted(
    path: str, dockerfile: bytes, given: Mapping[str, bytes], agents_given: Mapping[str, str]
) -> tuple[dict[str, bytes], dict[str, str]]:
    """The secrets and SSH agents the Dockerfile mounts, of those given (only these
    go to its build); one line before the build for a required one not given."""
    secrets, agents = secret_mounts(dockerfile), ssh_mounts(dockerfile)
    for line, secret, required in secrets:
        if required and secret not in given:
            raise DockerBuildError(
                f"{path}:{line}: the secret {secret!r} is not given; pass --secret"
                f" id={secret},src=PATH (or env=VARIABLE) or a [[secret]] table, or mark"
                " the mount required=false"
            )
    for line, agent, required in agents:
        if required and agent not in agents_given:
            raise DockerBuildError(
                f"{path}:{line}: the SSH agent {agent!r} is not given; pass --ssh"
                f" {agent if agent == 'default' else agent + '=SOCKET'}"
            )
    return (
        {s: given[s] for _, s, _ in secrets if s in given},
        {a: agents_given[a] for _, a, _ in agents if a in agents_given},
    )


def copy_entries(repo: Repository, pre_image: Copy) -> list[tuple[str, str]]:
    """(repository path, context path) of each file a ``copy`` pre-image brings in."""
    from ..source.inputs import copy_files

    source = pre_image.source
    offset = len(source) + 1 if source else 0
    return [
        (path, f"{pre_image.destination.rstrip('/')}/{path[offset:]}".lstrip("/"))
        for path in copy_files(repo.view, pre_image)
    ]
