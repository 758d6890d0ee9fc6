"""What a run and a plan return: values for summaries, reports and ``--json``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..builds.decisions import Decision, Found, Workflow
from ..builds.placement import LinkForecast
from ..builds.scheduler import Action, Outcome
from ..lookup.lookups import Answer, TierStatistics
from ..model.status import Status
from ..release.mirrors import Mirrored
from ..support import logs
from .intervals import Interval


@dataclass(frozen=True)
class ImageResult:
    """One image's part in a run, for summaries and ``--json``."""

    name: str
    spec: str
    action: str
    pushed: bool
    seconds: float
    reason: str
    tier: str | None
    error: str = ""
    note: str = ""
    #: The engine that built or pulled it ("" when nothing was done).
    engine: str = ""
    #: Seconds into the run when cargo had built all it takes (cargo images built).
    landed: float | None = None
    #: Seconds this run waited for the image to be published by another step.
    awaited: float | None = None
    #: ``--wait`` ran out before this awaited image came (another step's image).
    wait_ran_out: bool = False
    #: The manifest digest at the registries ("" where no registry told).
    digest: str = ""
    #: The manifest's size in bytes (0: no registry told).
    size: int = 0
    #: The manifest's media type ("": no registry told).
    media_type: str = ""
    #: The image's spec at each registry it is published to (the primary first).
    references: Mapping[str, str] = field(default_factory=dict)
    #: ``ensure``: each registry's state after the run (``present``, ``pushed``,
    #: ``copied``, ``unknown``, ``failed``), the primary first.
    registries: Mapping[str, str] = field(default_factory=dict)
    #: Blobs copied to mirrors (mounted, uploaded, present) and bytes streamed.
    copied: Mapping[str, int] | None = None
    #: ``ensure --attest``: its provenance (``attached``, ``present``, ``failed``), the
    #: artifact's digest.
    attestation: Mapping[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` record of this image."""
        record: dict[str, Any] = {
            "spec": self.spec,
            "action": self.action,
            "pushed": self.pushed,
            "seconds": round(self.seconds, 3),
            "reason": self.reason,
            "tier": self.tier,
            "engine": self.engine or None,
        }
        if self.error:
            record["error"] = self.error
        if self.note:
            record["note"] = self.note
        if self.landed is not None:
            record["artifacts_landed"] = round(self.landed, 3)
        if self.awaited is not None:
            record["awaited_seconds"] = round(self.awaited, 3)
        if self.wait_ran_out:
            record["wait_ran_out"] = True
        record["digest"] = self.digest or None
        if self.registries:
            record["registries"] = dict(self.registries)
        if self.copied is not None:
            record["copied"] = dict(self.copied)
        if self.attestation is not None:
            record["attestation"] = dict(self.attestation)
        return record


@dataclass(frozen=True)
class RunResult:
    """Every image of a run, dependencies first."""

    workflow: Workflow
    images: Mapping[str, ImageResult]
    seconds: float
    plan: RunPlan | None = None
    #: Every piece of work with its times since the run started.
    steps: tuple[Interval, ...] = ()
    #: Per lookup tier: count and latencies (seconds).
    lookups: Mapping[str, TierStatistics] = field(default_factory=dict)
    #: HTTP requests sent, by registry host.
    requests: Mapping[str, int] = field(default_factory=dict)
    #: What each engine did, by name (the home engine first).
    engines: Mapping[str, EngineReport] = field(default_factory=dict)
    #: The CI step this run was (``--step``).
    step: str | None = None
    #: The platform the run's images are for (``linux/amd64``).
    platform: str = ""

    @property
    def pooled(self) -> bool:
        """Whether the run had engines other than the local one alone."""
        return len(self.engines) > 1 or any(e.configured for e in self.engines.values())

    @property
    def ok(self) -> bool:
        """Whether every image ended as wanted."""
        return all(r.action not in ("failed", "skipped") for r in self.images.values())

    @property
    def only_waits_ran_out(self) -> bool:
        """Whether every failure is an awaited image that never came (``--wait`` ran
        out; the images that needed it skipped): no build of ours failed."""
        failed = [r for r in self.images.values() if r.action == "failed"]
        return bool(failed) and all(r.wait_ran_out for r in failed)

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` document."""
        document: dict[str, Any] = {
            "workflow": self.workflow.value,
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "images": {name: r.to_json() for name, r in self.images.items()},
        }
        if self.step is not None:
            document["step"] = self.step
        return document


@dataclass(frozen=True)
class EngineReport:
    """One engine of a run, for reports."""

    url: str
    platform: str
    slots: int
    builds: int = 0
    busy_seconds: float = 0.0
    transfers: int = 0
    lost: str = ""
    #: From ``--engine``/``[[engine]]`` (not the local engine by default).
    configured: bool = True

    def to_json(self) -> dict[str, Any]:
        """The ``--report`` record of this engine."""
        return {
            "url": self.url,
            "platform": self.platform,
            "slots": self.slots,
            "builds": self.builds,
            "busy_seconds": round(self.busy_seconds, 3),
            "transfers": self.transfers,
            "lost": self.lost or None,
        }


def found_state(local: bool, answer: Answer | None) -> Found:
    """One image's state: in the engine or not, and the registry's answer (if asked)."""
    if answer is None:
        return Found(local, False)
    present = answer.status is Status.PRESENT
    return Found(
        local,
        present,
        answer.tier,
        unknown=answer.status is Status.UNKNOWN,
        cached=answer.detail if answer.tier == "disk" else "",
        digest=answer.digest if present else "",
        size=answer.size if present else 0,
        media_type=answer.media_type if present else "",
    )


ACTION_WORDS = {Action.NONE: "none", Action.PULL: "pull", Action.BUILD: "build"}


@dataclass(frozen=True)
class RunPlan:
    """What a run would do and why, decided but not done."""

    workflow: Workflow
    decisions: Mapping[str, Decision]
    found: Mapping[str, Found]
    fingerprints: Mapping[str, str]
    dependencies: Mapping[str, tuple[str, ...]]
    #: Whether each image is ever published (``publish: false`` ones are not looked up).
    publish: Mapping[str, bool]
    #: The engine each build would go to (a pool only).
    placement: Mapping[str, str] = field(default_factory=dict)
    #: What would move over each link between an engine and a registry (a pool only).
    links: Mapping[str, LinkForecast] = field(default_factory=dict)
    #: The CI step planned (``--step``).
    step: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``plan --json`` document (also the ``plan`` part of a report)."""
        images: dict[str, Any] = {}
        for name, decision in self.decisions.items():
            state = self.found[name]
            if not self.publish[name]:
                published = "never (publish: false)"
            elif state.published:
                published = "present"
            elif state.unknown:
                published = "unknown"
            else:
                published = "absent"
            action = ACTION_WORDS[decision.action]
            if decision.push:
                action = "push" if decision.action is Action.NONE else f"{action}+push"
            images[name] = {
                "fingerprint": self.fingerprints[name],
                "spec": decision.spec,
                "local": state.local,
                "published": published,
                "tier": decision.tier,
                "action": action,
                "reason": decision.reason,
                "dependencies": list(self.dependencies[name]),
            }
            if self.placement:
                images[name]["engine"] = self.placement.get(name)
            if state.cached:
                images[name]["cached"] = state.cached
            images[name]["digest"] = state.digest or None
            if state.mirrors:  # (ensure with mirrors: what each said, what would be copied)
                images[name]["mirrors"] = {r: str(s) for r, s in state.mirrors.items()}
                absent = [r for r, s in state.mirrors.items() if s is Status.ABSENT]
                if absent:
                    images[name]["copy_to"] = absent
            if state.copied_from:
                images[name]["copy_from"] = state.copied_from
        document: dict[str, Any] = {
            "workflow": self.workflow.value,
            "images": images,
            **({"links": links_json(self.links)} if self.placement else {}),
        }
        if self.step is not None:
            document["step"] = self.step
        return document


def links_json(links: Mapping[str, LinkForecast]) -> dict[str, Any]:
    """What would move over each link, as ``plan --json`` has it (rate: bytes per
    second, null when not measured yet; ``unsized``: images whose bytes are guessed)."""
    return {
        name: {
            "images": f.images,
            "bytes": f.bytes,
            "unsized": f.unsized,
            "rate": f.rate,
            "seconds": round(f.seconds, 3),
        }
        for name, f in links.items()
    }


def image_result(decision: Decision, outcome: Outcome, offset: float) -> ImageResult:
    """One image's result (``offset``: the scheduler's start on the run's clock)."""
    return ImageResult(
        name=decision.name,
        spec=decision.spec,
        action=outcome.action,
        pushed=outcome.pushed,
        seconds=outcome.seconds,
        reason=decision.reason,
        tier=decision.tier,
        error=logs.redact_text(outcome.error),
        note=logs.redact_text(outcome.note),
        engine=outcome.engine,
        landed=None if outcome.landed is None else outcome.landed + offset,
    )


def published_result(
    result: ImageResult, primary: str, state: str, descriptor: Manifest
) -> ImageResult:
    """``result`` with where the primary has it (``state`` at the ``primary``
    registry), its digest, size and media type."""
    digest, size, media_type = descriptor
    registries = {primary: state} if state else {}
    references = {primary: result.spec} if state else {}
    return replace(
        result,
        digest=digest,
        size=size,
        media_type=media_type,
        registries=registries,
        references=references,
    )


def mirrored_result(result: ImageResult, mirrored: Mirrored | None) -> ImageResult:
    """``result`` with the mirrors' states; a mirror that lacks it after the run fails
    the image."""
    if mirrored is None:
        return result
    result = replace(
        result,
        registries={**result.registries, **mirrored.registries},
        references={**result.references, **mirrored.references},
        copied=mirrored.stats.to_json(),
    )
    if mirrored.errors and result.action not in ("failed", "skipped"):
        result = replace(result, action="failed", error="; ".join(mirrored.errors))
    return result


#: A manifest as a registry told of it: its digest, size and media type.
Manifest = tuple[str, int, str]


def descriptor_of(found: Found | None) -> Manifest:
    """The manifest the lookups found an image with (("", 0, ""): none said)."""
    if found is None or not found.published:
        return ("", 0, "")
    return (found.digest, found.size, found.media_type)


def attested_result(result: ImageResult, attested: Any) -> ImageResult:
    """``result`` with what ``ensure --attest`` did for it; a failed attestation fails
    the image (its job was to be published and attested)."""
    if attested is None:
        return result
    result = replace(result, attestation=attested.to_json())
    if attested.state == "failed" and result.action not in ("failed", "skipped"):
        result = replace(result, action="failed", error=f"attestation: {attested.error}")
    return result
