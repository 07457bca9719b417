"""What the HTTP API calls: each function finds the configured registry, picks the client from the app's
container (shared/container.py) and calls the shared/ helper or service that does the work. Importing
this module is light: the SDKs, the policy file (YAML) and the pipeline load on first use.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .config import RegistryRef
from .container import get_container
from .errors import (
    FailedVerification,
    InvalidInput,
    NotFound,
    Retryable,
)

if TYPE_CHECKING:
    from .cleanup import Plan, RunRecord
    from .cleanup.links import ExtendLink, LinkExtension
    from .registry import Page, RegistryClient
    from .retention.records import Plan as RetentionPlan
    from .retention.records import RunRecord as RetentionRun
    from .tasks import ImageRef, RunDetail, RunLog, RunState, SourceUpload
    from .verdicts import Verdict


# Registries -------------------------------------------------------------------------------------------


def registry(name: str) -> RegistryRef:
    """A configured registry, by its name (any case). Registries are never named by host."""
    found = get_container().settings.registries.get(name.lower())
    if found is None:
        raise NotFound(f"registry '{name}' is not configured")
    return found


def login_server(ref: RegistryRef) -> str:
    """The login server ARM reports for a configured registry (cached per process; errors mapped)."""
    return get_container().login_server(ref)


def _data(ref: RegistryRef) -> RegistryClient:
    login_server(ref)
    return get_container().registry_data(ref)


@dataclass(frozen=True)
class RegistryInfo:
    name: str
    login_server: str
    resource_id: str


def registries() -> list[RegistryInfo]:
    refs = get_container().settings.registries.values()
    return [RegistryInfo(ref.name, login_server(ref), ref.resource_id) for ref in refs]


def repositories(name: str, n: int, last: str | None = None) -> Page:
    return _data(registry(name)).list_repositories(n, last)


@dataclass(frozen=True)
class TagInfo:
    tag: dict[str, Any]  # ACR's view: name, digest, createdTime, lastUpdateTime, changeableAttributes
    verdict: Verdict | None
    tag_rules: dict[str, str] | None = None  # the tag judged on the policy's tag rules (with a verdict)

    @property
    def status(self) -> str | None:
        """The tag's status: its digest's verdict, failed when the tag breaks the tag rules."""
        if self.verdict is None:
            return None
        if self.verdict.status == "passed" and self.tag_rules and self.tag_rules["status"] == "failed":
            return "failed"
        return self.verdict.status


@dataclass(frozen=True)
class TagListing:
    tags: list[TagInfo]
    last: str | None  # for the next page
    policy_version: str  # the verdicts shown are under this policy


def tags(
    name: str, repository: str, n: int, last: str | None = None, orderby: str | None = None
) -> TagListing:
    """A page of tags, each with the verdict for its digest under the current policy."""
    ref = registry(name)
    try:
        page = _data(ref).list_tags(repository, n, last, orderby)
    except NotFound as exc:
        raise NotFound(f"repository '{repository}' was not found in registry '{ref.name}'") from exc
    pipeline = get_container().verifier
    listed = [(str(tag.get("name")), str(tag.get("digest"))) for tag in page.items]
    judged = pipeline.judge_listing(ref, repository, listed)
    found = [TagInfo(tag, verdict, rules) for tag, (verdict, rules) in zip(page.items, judged, strict=True)]
    return TagListing(found, page.last, pipeline.policy.version)


def _own_image(ref: RegistryRef, reference: str) -> ImageRef:
    """An image of this registry: a reference naming another host is refused, ours is dropped."""
    from .tasks import parse_image

    image = parse_image(reference)
    if image.host is not None and image.host != login_server(ref).lower():
        raise InvalidInput(
            f"'{reference}' is on {image.host}: only images of registry '{ref.name}' can be used here"
        )
    return image


# ACR Tasks: builds and runs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildOptions:
    images: list[str]
    dockerfile: str = "Dockerfile"
    build_args: dict[str, str] = field(default_factory=dict)
    platform: dict[str, str] | None = None
    push: bool = True
    no_cache: bool = False
    timeout: int = 3600


@dataclass(frozen=True)
class BuildPlan:
    registry: RegistryRef
    images: list[str]
    options: BuildOptions


def plan_build(name: str, options: BuildOptions) -> BuildPlan:
    """Check a build before any byte of its context moves: the registry, and images in it only."""
    ref = registry(name)
    images = []
    for reference in options.images:
        image = _own_image(ref, reference)
        if image.digest:
            raise InvalidInput(f"'{reference}': a build names its images by tag, not by digest")
        images.append(f"{image.repository}:{image.tag}")
    return BuildPlan(ref, images, options)


def source_upload(plan: BuildPlan) -> SourceUpload:
    from . import tasks

    ref = plan.registry
    url, relative = tasks.source_upload_target(
        get_container().tasks_client(ref.subscription), ref.group, ref.name
    )
    return tasks.SourceUpload(url, relative)


Resolve = Callable[..., list[tuple[Any, ...]]]

# IPv6 prefixes that carry an IPv4 address a gateway would reach: NAT64 (RFC 6052) and 6to4 (RFC 3056).
NAT64 = ipaddress.ip_network("64:ff9b::/96")


def internal_reason(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why an address is not one a build source may come from (None: a public unicast address)."""
    if isinstance(address, ipaddress.IPv6Address) and not (address.is_loopback or address.is_unspecified):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and (address in NAT64 or int(address) >> 32 == 0):  # NAT64, IPv4-compatible
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return internal_reason(embedded)
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local (the instance metadata service lives there)"
    if address.is_multicast:
        return "multicast"
    if address.is_unspecified:
        return "unspecified"
    if not address.is_global:
        return "private or reserved"
    return None


def check_build_source(
    url: str, allowed_hosts: tuple[str, ...] | None = None, resolve: Resolve = socket.getaddrinfo
) -> str:
    """A build's sourceUrl that ACR's build agent may fetch: its host in DOCKMASTER_BUILD_SOURCE_HOSTS when
    that is set (the operator vouches for those hosts), else a host whose every address is public. The
    agent runs inside Azure: an internal address (loopback, private, link-local with the metadata
    service) would have it fetch from there. The app never fetches the URL itself, so redirects the agent
    follows are beyond this check: set the allow-list to exclude them too."""
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".").lower()
    if allowed_hosts is None:
        allowed_hosts = get_container().settings.build_source_hosts
    if allowed_hosts:
        if host not in allowed_hosts:
            listed = ", ".join(allowed_hosts)
            raise InvalidInput(
                f"sourceUrl host '{host}' is not one of DOCKMASTER_BUILD_SOURCE_HOSTS ({listed})"
            )
        return url
    try:
        found = resolve(host, parts.port or 443, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
            raise InvalidInput(f"sourceUrl host '{host}' does not resolve") from None
        raise Retryable(f"sourceUrl host '{host}' could not be resolved now ({exc.strerror})") from None
    except (UnicodeError, ValueError):
        raise InvalidInput(f"sourceUrl host '{host}' is not a host name") from None
    for *_, sockaddr in found:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        reason = internal_reason(address)
        if reason is not None:
            raise InvalidInput(
                f"sourceUrl host '{host}' is {address}, an internal address ({reason}): ACR's build agent "
                "must not fetch from it (DOCKMASTER_BUILD_SOURCE_HOSTS lists hosts to allow)"
            )
    return url


def start_build(plan: BuildPlan, source_location: str) -> RunState:
    from . import tasks

    ref, options = plan.registry, plan.options
    body = tasks.docker_build_request(
        source_location,
        plan.images,
        dockerfile=options.dockerfile,
        build_args=options.build_args,
        push=options.push,
        timeout=options.timeout,
        no_cache=options.no_cache,
        platform=options.platform,
    )
    return tasks.schedule(get_container().tasks_client(ref.subscription), ref.group, ref.name, body)


def start_run(name: str, image: str, args: list[str], timeout: int) -> RunState:
    """`az acr run --cmd`: one image of this registry (by tag or digest) with arguments.

    A tag is resolved to its digest first and the run names that digest, so the image whose verdict was
    read is the image that runs (the tag may move meanwhile). An image that failed verification is refused.
    """
    from . import tasks
    from .api.params import verification_id

    ref = registry(name)
    found = _own_image(ref, image)
    reference = found.digest or str(found.tag)
    try:
        digest = _data(ref).digest_of(found.repository, reference)
    except NotFound as exc:
        raise NotFound(
            f"{found.repository}{'@' if found.digest else ':'}{reference} was not found in "
            f"registry '{ref.name}'"
        ) from exc
    failed = get_container().verifier.failed_verdict(ref, found.repository, digest)
    if failed is not None:
        vid = verification_id(ref.name, found.repository, digest, failed.policy_version)
        raise FailedVerification(
            f"{found.repository}@{digest} failed verification {vid} under policy {failed.policy_version}"
            f"{' (quarantined)' if any(a.startswith('quarantined') for a in failed.actions) else ''}: "
            "Dockmaster does not run an image that failed verification",
            detail={"verification": vid, "status": failed.status, "policyVersion": failed.policy_version},
        )
    command = tasks.image_command(found.repository, args, digest=digest)
    body = tasks.encoded_cmd_request(command, timeout)
    return tasks.schedule(get_container().tasks_client(ref.subscription), ref.group, ref.name, body)


def run(name: str, run_id: str) -> RunDetail:
    from . import tasks

    ref = registry(name)
    return tasks.describe_run(get_container().tasks_client(ref.subscription), ref.group, ref.name, run_id)


def recent_runs(name: str, top: int) -> list[RunDetail]:
    """The registry's newest `top` ACR Tasks runs, newest first."""
    from . import tasks

    ref = registry(name)
    return tasks.recent_runs(get_container().tasks_client(ref.subscription), ref.group, ref.name, top)


def run_log(name: str, run_id: str) -> RunLog:
    from . import tasks

    ref = registry(name)
    return tasks.RunLog(get_container().tasks_client(ref.subscription), ref.group, ref.name, run_id)


# Verification -----------------------------------------------------------------------------------------


def verify_now(name: str, repository: str, tag: str | None = None, digest: str | None = None) -> Verdict:
    """The push pipeline for a tag or digest now, caused by `api:<id>`; returns the verdict so far."""
    from .verification import Request, new_cause

    ref = registry(name)
    if tag is None and digest is None:
        raise InvalidInput("name a tag or a digest to verify")
    # Looked up first, so that a name that is not in the registry is a 404 and stores no verdict.
    image = f"{repository}@{digest}" if digest else f"{repository}:{tag}"
    try:
        digest = _data(ref).get_manifest(repository, digest or str(tag)).digest
    except NotFound as exc:
        raise NotFound(f"{image} was not found in registry '{ref.name}'") from exc
    return get_container().verifier.verify(Request(ref, repository, digest, tag, new_cause()))


def verdict(name: str, repository: str, digest: str, policy_version: str) -> Verdict:
    return get_container().verifier.verdict(registry(name), repository, digest, policy_version)


def verdict_history(name: str, repository: str, digest: str | None = None, top: int = 100) -> list[Verdict]:
    """A repository's verdicts, newest first (optionally of one digest)."""
    return get_container().verifier.history(registry(name), repository, digest)[:top]


# Cleanup ----------------------------------------------------------------------------------------------


def plan_cleanup(filters: Mapping[str, Any] | None = None) -> Plan:
    """A plan for the configured cleanup narrowed by `filters` (the API's camelCase names): every lab with
    its decision and reason. Deletes nothing; stamps first-sight tags and sends due warnings, as the timer
    does; stored under its id for `execute_cleanup`. Conflict when cleanup is turned off."""
    return get_container().cleanup.plan(filters)


def execute_cleanup(
    plan_id: str | None = None,
    filters: Mapping[str, Any] | None = None,
    *,
    confirm: bool,
    dry_run: bool | None = None,
) -> RunRecord:
    """Plan afresh and delete what it says (with `plan_id`, only what the reviewed plan said too); the
    run record, stored. `dry_run` can only make the run dry (CLEANUP_DRY_RUN=true always wins)."""
    return get_container().cleanup.execute(plan_id, filters, confirm=confirm, dry_run=dry_run, trigger="api")


def cleanup_plan(plan_id: str) -> Plan:
    return get_container().cleanup.get_plan(plan_id)


def cleanup_run(run_id: str) -> RunRecord:
    return get_container().cleanup.get_run(run_id)


def cleanup_records(kind: str, top: int, continuation: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """Stored cleanup plans or runs (`kind`), newest first: (summaries, the next page's continuation)."""
    return get_container().cleanup.recent(kind, top, continuation)


def cleanup_enabled() -> bool:
    return get_container().settings.cleanup_enabled


def extend_lab(group: str, hours: float, subscription: str | None = None) -> dt.datetime:
    """Push a lab's expiry out by `hours`, at most CLEANUP_MAX_EXTENSION_HOURS from now: the new expiry."""
    return get_container().cleanup.extend(group, hours, subscription)


# Image retention -----------------------------------------------------------------------------------------


def plan_retention(filters: Mapping[str, Any] | None = None) -> RetentionPlan:
    """Every tag and manifest of the repositories a retention rule applies to (narrowed by `filters`:
    registry, repositories), with its decision and the rule that decided it. Deletes nothing; stored
    under its id for `execute_retention`. Conflict when retention is turned off."""
    return get_container().retention.plan(filters)


def execute_retention(
    plan_id: str | None = None,
    filters: Mapping[str, Any] | None = None,
    *,
    confirm: bool,
    dry_run: bool | None = None,
) -> RetentionRun:
    """Plan afresh and delete what both plans delete (or, with filters, what the fresh plan deletes),
    re-reading each manifest or tag right before its delete. RETENTION_DRY_RUN=true always wins."""
    return get_container().retention.execute(
        plan_id, filters, confirm=confirm, dry_run=dry_run, trigger="api"
    )


def retention_plan(plan_id: str) -> RetentionPlan:
    return get_container().retention.get_plan(plan_id)


def retention_run(run_id: str) -> RetentionRun:
    return get_container().retention.get_run(run_id)


# Extend links (the warning's one-click link; no function key, the link's signature instead) ----------------


def _link_extension() -> LinkExtension:
    from . import clients
    from .cleanup.extension import LabExtension
    from .cleanup.links import LinkExtension, UsedLinks
    from .cleanup.records import RUNS_TABLE

    cleanup = get_container().cleanup
    extension = LabExtension(cleanup.settings, cleanup.inventory, cleanup.clock)
    return LinkExtension(
        cleanup.settings, extension, UsedLinks(clients.storage_table(RUNS_TABLE)), cleanup.clock
    )


def check_extend_link(token: str) -> ExtendLink:
    """The lab an extend link names, if this app signed it and it has not expired; changes nothing."""
    return _link_extension().check(token)


def redeem_extend_link(token: str) -> tuple[ExtendLink, dt.datetime]:
    """Extend the lab an extend link names, once: the link and the new expiry."""
    return _link_extension().redeem(token)
