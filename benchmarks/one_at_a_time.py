"""The original mzbuild's way of looking images up: one ``HEAD`` at a time.

Usage: python benchmarks/one_at_a_time.py [--ca FILE] [--concurrency N] SPEC...

One process, one keep-alive connection (HTTP/1.1), one manifest ``HEAD``
after the other, over HTTPS when ``--ca`` names the registry's CA, else
plain HTTP; prints ``present``/``absent`` counts. With ``--concurrency N``:
the same ``HEAD``s N at a time from a bare httpx client (HTTP/2 over TLS),
the least any Python tool on httpx can do. ``benchmarks/lookup.py`` times
both as whole processes next to ``check``.
"""

from __future__ import annotations

import argparse
import sys

import httpx

ACCEPT = (
    "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json,"
    " application/vnd.docker.distribution.manifest.list.v2+json,"
    " application/vnd.docker.distribution.manifest.v2+json"
)


def main() -> int:
    """HEAD every spec in turn; exit 0 when every answer was 200 or 404."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--ca")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("specs", nargs="+")
    args = parser.parse_args()
    scheme = "https" if args.ca else "http"
    if args.concurrency > 1:
        import anyio

        return anyio.run(_concurrently, args.specs, scheme, args.ca, args.concurrency)
    counts = {"present": 0, "absent": 0}
    with httpx.Client(verify=args.ca or True, timeout=30) as client:
        for spec in args.specs:
            host, _, rest = spec.partition("/")
            repo, _, tag = rest.rpartition(":")
            response = client.head(
                f"{scheme}://{host}/v2/{repo}/manifests/{tag}", headers={"Accept": ACCEPT}
            )
            if response.status_code not in (200, 404):
                print(f"{spec}: {response.status_code}", file=sys.stderr)
                return 1
            counts["present" if response.status_code == 200 else "absent"] += 1
    print(counts)
    return 0


async def _concurrently(specs: list[str], scheme: str, ca: str | None, concurrency: int) -> int:
    import anyio

    counts = {"present": 0, "absent": 0, "other": 0}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    slots = anyio.Semaphore(concurrency)
    async with httpx.AsyncClient(
        verify=ca or True, timeout=30, limits=limits, http2=scheme == "https"
    ) as client:

        async def head(spec: str) -> None:
            host, _, rest = spec.partition("/")
            repo, _, tag = rest.rpartition(":")
            async with slots:
                response = await client.head(
                    f"{scheme}://{host}/v2/{repo}/manifests/{tag}", headers={"Accept": ACCEPT}
                )
            key = {200: "present", 404: "absent"}.get(response.status_code, "other")
            counts[key] += 1

        async with anyio.create_task_group() as tg:
            for spec in specs:
                tg.start_soon(head, spec)
    print(counts)
    return 1 if counts["other"] else 0


if __name__ == "__main__":
    sys.exit(main())
