"""The endpoints. Each one parses its input, calls shared/services.py, and maps the result: nothing else.

Route functions are plain `def` (FastAPI runs them in its thread pool, as the SDK clients block),
except the build upload, which reads the request body as it streams.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from .. import services
from ..clock import exact
from ..errors import DockmasterError, InvalidInput
from ..health import health as health_of
from . import models, pages, params
from .auth import OPERATE, READ, require
from .limits import MAX_CONTEXT_BYTES, MAX_JSON_BYTES, UnsupportedMediaType, read_limited

if TYPE_CHECKING:
    from ..tasks import RunDetail, RunLog, RunState
    from ..verdicts import Verdict

# A followed log answers within this many seconds: an HTTP response in Azure must start within 230 s (the
# load balancer's idle timeout, "Function app timeout duration" in the Functions docs), and AsgiMiddleware
# buffers the whole response, so there is no streaming: the caller polls on with the next offset.
FOLLOW_SECONDS = 50.0
LOG_POLL_SECONDS = 1.0
NEXT_OFFSET = "X-Log-Next-Offset"
COMPLETE = "X-Log-Complete"
GZIP_TYPES = ("application/gzip", "application/x-gzip")
BUILD_QUERY = ("image", "dockerfile", "buildArg", "platform", "push", "noCache", "timeoutSeconds")

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": models.ErrorResponse, "description": "invalid input"},
    401: {"model": models.ErrorResponse, "description": "no function key, or no signed-in caller"},
    403: {"model": models.ErrorResponse, "description": "the caller lacks the app role"},
    404: {"model": models.ErrorResponse, "description": "not found (or registry not configured)"},
    502: {
        "model": models.ErrorResponse,
        "description": "Azure refused the app's own identity: a role assignment is missing (the message and "
        "`detail.requiredRole` name it)",
    },
    503: {"model": models.ErrorResponse, "description": "a dependency is unavailable; retry"},
}


def _error(description: str) -> dict[str, Any]:
    return {"model": models.ErrorResponse, "description": description}


read = [Depends(require(READ))]
operate = [Depends(require(OPERATE))]
router = APIRouter(prefix="/api", responses=ERRORS)

Registry = Annotated[str, Path(max_length=64, description="the configured registry name (never a host)")]
Repository = Annotated[str, Path(max_length=256, description="repository name; may contain '/'")]


# Helpers: the mapping half of parse → call → map -----------------------------------------------------------


def _next_link(request: Request, n: int, last: str | None) -> str | None:
    if last is None:
        return None
    # The function key may have come as ?code=: never echo it into a body or header.
    return str(request.url.remove_query_params("code").include_query_params(last=last, n=n))


def _paged(body: BaseModel, next_link: str | None) -> JSONResponse:
    headers = {"Link": f'<{next_link}>; rel="next"'} if next_link else None
    return JSONResponse(body.model_dump(mode="json"), headers=headers)


def _accepted(body: BaseModel, location: str) -> JSONResponse:
    return JSONResponse(
        body.model_dump(mode="json"), status_code=202, headers={"Location": location, "Retry-After": "2"}
    )


def _run_accepted(request: Request, registry: str, state: RunState) -> JSONResponse:
    location = str(request.url_for("get_run", registry=registry, runId=state.run_id))
    return _accepted(
        models.RunAccepted(registry=registry, runId=state.run_id, status=state.status, location=location),
        location,
    )


def _verification(verdict: Verdict) -> models.VerificationOut:
    vid = params.verification_id(verdict.registry, verdict.repository, verdict.digest, verdict.policy_version)
    # Final for a caller once the verdict is in *and* its actions (lock, quarantine) are applied.
    done = verdict.final and not verdict.pending_actions
    return models.VerificationOut.model_validate(
        {"id": vid, "final": done, "pendingActions": verdict.pending_actions, **verdict.public()}
    )


# Health ----------------------------------------------------------------------------------------------------


@router.get(
    "/health",
    response_model=models.Health,
    responses={503: {"model": models.Health, "description": "a dependency is failing"}},
    openapi_extra={"security": []},
    summary="Liveness; with deep=true, reachability of storage, ARM and each registry",
)
def health(
    deep: Annotated[bool, Query(description="check the dependencies (cached 10 s)")] = False,
) -> Response:
    ok, probes = health_of(deep)
    checks = [
        {"name": p.name, "kind": p.kind, "status": p.status, "latencyMs": p.latency_ms, "error": p.error}
        for p in probes
    ]
    body = models.Health.model_validate({"status": "ok" if ok else "failing", "checks": checks})
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if ok else 503)


# Registries ------------------------------------------------------------------------------------------------


@router.get(
    "/registries", response_model=models.RegistryList, dependencies=read, summary="Configured registries"
)
def list_registries() -> models.RegistryList:
    return models.RegistryList(
        registries=[
            models.RegistryOut(name=r.name, loginServer=r.login_server, resourceId=r.resource_id)
            for r in services.registries()
        ]
    )


@router.get(
    "/registries/{registry}/repositories",
    response_model=models.RepositoryPage,
    dependencies=read,
    summary="Repositories (az acr repository list), paged",
)
def list_repositories(
    request: Request,
    registry: Registry,
    n: Annotated[int, Query(ge=1, le=1000, description="page size")] = 100,
    last: Annotated[
        str | None, Query(max_length=256, description="the last repository of the previous page")
    ] = None,
) -> Response:
    name = params.registry_name(registry)
    page = services.repositories(name, n, params.repository(last) if last else None)
    link = _next_link(request, n, page.last)
    return _paged(models.RepositoryPage(registry=name, repositories=page.items, nextLink=link), link)


@router.get(
    "/registries/{registry}/repositories/{repository:path}/tags",
    response_model=models.TagPage,
    dependencies=read,
    summary="Tags with lock state and verdict (az acr repository show-tags --detail), paged",
)
def list_tags(
    request: Request,
    registry: Registry,
    repository: Repository,
    n: Annotated[int, Query(ge=1, le=1000)] = 100,
    last: Annotated[
        str | None, Query(max_length=128, description="the last tag of the previous page")
    ] = None,
    orderby: Annotated[str | None, Query(pattern="^(timedesc|timeasc)$")] = None,
) -> Response:
    name, repo = params.registry_name(registry), params.repository(repository)
    listing = services.tags(name, repo, n, params.tag(last) if last else None, orderby)
    tags = []
    for item in listing.tags:
        tag, verdict = item.tag, item.verdict
        summary = None
        if verdict is not None:
            summary = models.VerdictSummary(
                id=_verification(verdict).id,
                status=item.status or verdict.status,
                digestStatus=verdict.status,
                tagRules=models.TagResult.model_validate(item.tag_rules) if item.tag_rules else None,
                policyVersion=verdict.policy_version,
                completedAt=exact(verdict.completed_at),
            )
        tags.append(
            models.TagOut(
                name=tag["name"],
                digest=tag["digest"],
                createdTime=tag.get("createdTime"),
                lastUpdateTime=tag.get("lastUpdateTime"),
                changeableAttributes=models.TagAttributes.model_validate(
                    tag.get("changeableAttributes") or {}
                ),
                verdict=summary,
            )
        )
    link = _next_link(request, n, listing.last)
    body = models.TagPage(
        registry=name, repository=repo, policyVersion=listing.policy_version, tags=tags, nextLink=link
    )
    return _paged(body, link)


@router.get(
    "/registries/{registry}/repositories/{repository:path}/verdicts",
    response_model=models.VerdictHistory,
    dependencies=read,
    summary="Verdict history of a repository, newest first",
)
def list_verdicts(
    registry: Registry,
    repository: Repository,
    digest: Annotated[str | None, Query(max_length=71)] = None,
    top: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> models.VerdictHistory:
    name, repo = params.registry_name(registry), params.repository(repository)
    found = services.verdict_history(name, repo, params.digest(digest) if digest else None, top)
    return models.VerdictHistory(
        registry=name, repository=repo, verifications=[_verification(v) for v in found]
    )


# Builds and runs (ACR Tasks) -------------------------------------------------------------------------------

BUILD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/gzip": {
                "schema": {"type": "string", "format": "binary"},
                "description": f"a tar.gz build context (at most {MAX_CONTEXT_BYTES} bytes); "
                "options as query parameters. ACR Tasks extracts it on its build agent: devstack fails "
                "the run when it expands to more than 10 times its upload limit (2000 MiB by default) "
                "or holds more than 100000 entries; ACR documents no such limit",
            },
            "application/json": {"schema": models.BuildFromUrl.model_json_schema()},
        },
    }
}


@router.post(
    "/registries/{registry}/builds",
    status_code=202,
    response_model=models.RunAccepted,
    responses={413: {"model": models.ErrorResponse}, 415: {"model": models.ErrorResponse}},
    dependencies=operate,
    openapi_extra=BUILD_BODY,
    summary="Build (az acr build) from an uploaded tar.gz or a sourceUrl; 202 with the run",
)
async def create_build(
    request: Request,
    registry: Registry,
    image: Annotated[
        list[str] | None, Query(max_length=models.MAX_IMAGES, description="repository:tag, repeatable")
    ] = None,
    dockerfile: Annotated[str, Query(max_length=256)] = "Dockerfile",
    buildArg: Annotated[list[str] | None, Query(max_length=32, description="NAME=VALUE, repeatable")] = None,
    platform: Annotated[str, Query(max_length=32)] = "linux/amd64",
    push: bool = True,
    noCache: bool = False,
    timeoutSeconds: Annotated[int, Query(ge=300, le=28800)] = 3600,
) -> Response:
    name = params.registry_name(registry)
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == "application/json":
        if set(request.query_params) & set(BUILD_QUERY):
            raise InvalidInput(
                "with a JSON body, give the build options in the body, not as query parameters"
            )
        spec = models.BuildFromUrl.model_validate_json(await read_limited(request, MAX_JSON_BYTES))
        # Syntax first, then where it points (a name is resolved: that blocks, so off the loop).
        source_url = await run_in_threadpool(services.check_build_source, params.source_url(spec.sourceUrl))
        options = services.BuildOptions(
            images=spec.images,
            dockerfile=params.dockerfile(spec.dockerfile),
            build_args=params.build_args(spec.buildArgs),
            platform=params.platform(spec.platform),
            push=spec.push,
            no_cache=spec.noCache,
            timeout=spec.timeoutSeconds,
        )
        plan = await run_in_threadpool(services.plan_build, name, options)
        state = await run_in_threadpool(services.start_build, plan, source_url)
        return _run_accepted(request, plan.registry.name, state)
    if media not in GZIP_TYPES:
        raise UnsupportedMediaType(
            "send the build context as application/gzip (a tar.gz), or application/json with a sourceUrl"
        )
    images = image or []
    if push and not images:
        raise InvalidInput("name at least one image (?image=repository:tag) to push, or set push=false")
    options = services.BuildOptions(
        images=images,
        dockerfile=params.dockerfile(dockerfile),
        build_args=params.build_arg_pairs(buildArg or []),
        platform=params.platform(platform),
        push=push,
        no_cache=noCache,
        timeout=timeoutSeconds,
    )
    plan = await run_in_threadpool(services.plan_build, name, options)
    upload = await run_in_threadpool(services.source_upload, plan)
    async for chunk in request.stream():  # the app's body limit stops it at MAX_CONTEXT_BYTES
        if chunk:
            await run_in_threadpool(upload.write, chunk)
    source = await run_in_threadpool(upload.finish)
    state = await run_in_threadpool(services.start_build, plan, source)
    return _run_accepted(request, plan.registry.name, state)


@router.post(
    "/registries/{registry}/runs",
    status_code=202,
    response_model=models.RunAccepted,
    responses={
        404: _error("registry not configured, or no such tag or digest in it"),
        409: _error(
            "the image failed verification (`ImageFailedVerification`; it is quarantined): the message and "
            "`detail` name the verification"
        ),
    },
    dependencies=operate,
    summary="Run an image of this registry with arguments (az acr run --cmd); 202 with the run",
    description="A tag is resolved to its digest first and the run names that digest. An image whose "
    "verdict is `failed` (under the current policy, or its newest verdict when the current policy has "
    "none) is refused with 409.",
)
def create_run(request: Request, registry: Registry, body: models.RunRequest) -> Response:
    name = params.registry_name(registry)
    state = services.start_run(name, body.image, body.args, body.timeoutSeconds)
    return _run_accepted(request, services.registry(name).name, state)


@router.get(
    "/registries/{registry}/runs/{runId}",
    name="get_run",
    response_model=models.RunOut,
    dependencies=read,
    summary="A run: status, times, output images, error",
)
def get_run(registry: Registry, runId: Annotated[str, Path(max_length=64)]) -> models.RunOut:
    name = params.registry_name(registry)
    return _run_out(services.registry(name).name, services.run(name, params.run_id(runId)))


@router.get(
    "/registries/{registry}/runs",
    response_model=models.RunList,
    dependencies=read,
    summary="The registry's newest runs, newest first (az acr task list-runs --top)",
)
def list_runs(
    registry: Registry,
    top: Annotated[int, Query(ge=1, le=100, description="how many runs, newest first")] = 20,
) -> models.RunList:
    name = params.registry_name(registry)
    shown = services.registry(name).name
    return models.RunList(
        registry=shown, runs=[_run_out(shown, run) for run in services.recent_runs(name, top)]
    )


def _run_out(registry: str, run: RunDetail) -> models.RunOut:
    return models.RunOut(
        registry=registry,
        runId=run.run_id,
        status=run.status,
        finished=run.finished_running,
        runType=run.run_type,
        createTime=run.created,
        startTime=run.started,
        finishTime=run.finished,
        lastUpdatedTime=run.updated,
        platform=run.platform,
        outputImages=[models.OutputImage.model_validate(i) for i in run.output_images],
        error=run.error,
    )


class _Paused(Exception):
    """Ends a log read at a poll: there are bytes to return, or the wait is over."""


def _read_log(log: RunLog, offset: int, wait: float) -> tuple[bytes, bool]:
    """(the log's bytes from `offset`, whether the log is complete), waiting up to `wait` seconds for
    bytes past `offset` or the end of the log, whichever comes first."""
    deadline = time.monotonic() + wait
    received = bytearray()

    def pause(seconds: float) -> None:
        # chunks() pauses only when the log is not complete yet: with bytes in hand, or no time left, stop.
        left = deadline - time.monotonic()
        if received or left <= 0:
            raise _Paused
        time.sleep(min(seconds, left))

    try:
        # No deadline of its own (infinite): it returns only once the log is complete.
        for chunk in log.chunks(
            offset=offset, follow=True, max_seconds=float("inf"), poll_seconds=LOG_POLL_SECONDS, sleep=pause
        ):
            received += chunk
    except _Paused:
        return bytes(received), False
    return bytes(received), True


@router.get(
    "/registries/{registry}/runs/{runId}/log",
    response_class=Response,
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": (
                f"the log's bytes from `offset` (possibly none); read on from `{NEXT_OFFSET}` until "
                f"`{COMPLETE}` is true. Join the bytes before decoding: a character may span two reads."
            ),
            "headers": {
                NEXT_OFFSET: {
                    "description": "the offset to read on from (offset + the bytes in this body)",
                    "schema": {"type": "integer", "minimum": 0},
                },
                COMPLETE: {
                    "description": "true once the run's log is complete: nothing will follow",
                    "schema": {"type": "string", "enum": ["true", "false"]},
                },
                "Link": {
                    "description": 'while the log is not complete, `<url>; rel="next"`: the follow-up read',
                    "schema": {"type": "string"},
                },
            },
        }
    },
    dependencies=read,
    summary=f"A run's log from a byte offset; follow=true waits (up to {FOLLOW_SECONDS:.0f} s) for more",
)
def get_run_log(
    request: Request,
    registry: Registry,
    runId: Annotated[str, Path(max_length=64)],
    follow: Annotated[
        bool,
        Query(
            description=(
                f"wait up to {FOLLOW_SECONDS:.0f} s until the log grows past `offset` or is complete "
                "(a long poll: call again from the next offset)"
            )
        ),
    ] = False,
    offset: Annotated[int, Query(ge=0, description=f"the byte to start at: 0, or {NEXT_OFFSET}")] = 0,
) -> Response:
    log = services.run_log(params.registry_name(registry), params.run_id(runId))
    data, complete = _read_log(log, offset, FOLLOW_SECONDS if follow else 0.0)
    following = offset + len(data)
    headers = {NEXT_OFFSET: str(following), COMPLETE: "true" if complete else "false"}
    if not complete:
        # The function key may have come as ?code=: never echo it into a header.
        link = request.url.remove_query_params("code").include_query_params(offset=following, follow="true")
        headers["Link"] = f'<{link}>; rel="next"'
    return Response(data, media_type="text/plain; charset=utf-8", headers=headers)


# Verification ----------------------------------------------------------------------------------------------


@router.post(
    "/verifications",
    status_code=202,
    response_model=models.VerificationOut,
    dependencies=operate,
    summary="Verify a tag or digest now (the push pipeline, cause api:<id>); 202 with its location",
)
def create_verification(request: Request, body: models.VerificationRequest) -> Response:
    name, repo = params.registry_name(body.registry), params.repository(body.repository)
    tag = params.tag(body.tag) if body.tag is not None else None
    digest = params.digest(body.digest) if body.digest is not None else None
    out = _verification(services.verify_now(name, repo, tag, digest))
    return _accepted(out, str(request.url_for("get_verification", id=out.id)))


@router.get(
    "/verifications/{id}",
    name="get_verification",
    response_model=models.VerificationOut,
    dependencies=read,
    summary="A verification: status, checks, run, actions",
)
def get_verification(
    id: Annotated[str, Path(max_length=params.MAX_VERIFICATION_ID)],
) -> models.VerificationOut:
    registry, repository, digest, policy_version = params.parse_verification_id(id)
    return _verification(services.verdict(registry, repository, digest, policy_version))


# Cleanup ---------------------------------------------------------------------------------------------------


CLEANUP_OFF = "cleanup is turned off (CLEANUP_ENABLED=false)"


@router.post(
    "/cleanup/plan",
    response_model=models.CleanupPlanOut,
    responses={409: _error(CLEANUP_OFF)},
    dependencies=operate,
    summary="Plan a cleanup of lab resource groups: every lab, its decision and why; deletes nothing",
    description="A dry run of the scheduled cleanup, narrowed by the filters. Nothing is deleted, but the "
    "plan does what the timer does on first sight: it normalizes relative expiries, stamps "
    "`dockmaster-first-seen` and sends due warnings. The plan is stored: execute it by its `planId`.",
)
def plan_cleanup(body: Annotated[models.CleanupPlanRequest | None, Body()] = None) -> models.CleanupPlanOut:
    filters = (body or models.CleanupPlanRequest()).filters
    plan = services.plan_cleanup(filters.model_dump(exclude_none=True))
    return models.CleanupPlanOut.model_validate(plan.public())


@router.post(
    "/cleanup/execute",
    response_model=models.CleanupRunOut,
    responses={
        404: _error("no such plan"),
        409: _error(f"{CLEANUP_OFF}, or the plan is more than 24 hours old: make a new one"),
        503: _error(
            "a dependency is unavailable, or a deletion failed in a way worth retrying: the run is "
            "recorded (detail.runId)"
        ),
    },
    dependencies=operate,
    summary="Execute a cleanup (confirm: true): plan afresh, delete what both plans delete; the run record",
    description="With `planId`, only labs that the reviewed plan *and* a fresh plan made now would delete "
    "are deleted; with `filters`, what a fresh plan deletes. Right before each delete the group and its "
    "locks are read again. Deletes are sent without waiting (the groups are `Deleting` when this "
    "answers); at most the per-run cap. With CLEANUP_DRY_RUN=true or `dryRun: true` nothing is deleted "
    "(outcome `would-delete`). The run record is stored: read it back at /api/cleanup/runs/{runId}.",
)
def execute_cleanup(body: models.CleanupExecuteRequest) -> models.CleanupRunOut:
    filters = body.filters.model_dump(exclude_none=True) if body.filters is not None else None
    run = services.execute_cleanup(body.planId, filters, confirm=body.confirm, dry_run=body.dryRun)
    return models.CleanupRunOut.model_validate(run.public())


def _records_link(request: Request, top: int, continuation: str | None) -> str | None:
    if continuation is None:
        return None
    return str(
        request.url.remove_query_params("code").include_query_params(top=top, continuation=continuation)
    )


TOP = Annotated[int, Query(ge=1, le=100, description="records per page")]
CONTINUATION = Annotated[
    str | None, Query(max_length=1024, description="from the previous page's nextLink; opaque")
]


@router.get(
    "/cleanup/plans",
    response_model=models.CleanupPlanList,
    dependencies=read,
    summary="Stored cleanup plans (the timer's and the API's), newest first, paged",
)
def list_cleanup_plans(request: Request, top: TOP = 20, continuation: CONTINUATION = None) -> Response:
    found, following = services.cleanup_records("plan", top, continuation)
    link = _records_link(request, top, following)
    body = models.CleanupPlanList(enabled=services.cleanup_enabled(), plans=found, nextLink=link)
    return _paged(body, link)


@router.get(
    "/cleanup/runs",
    response_model=models.CleanupRunList,
    dependencies=read,
    summary="Cleanup run records, newest first, paged: what each deleted, blocked or failed",
)
def list_cleanup_runs(request: Request, top: TOP = 20, continuation: CONTINUATION = None) -> Response:
    found, following = services.cleanup_records("run", top, continuation)
    link = _records_link(request, top, following)
    body = models.CleanupRunList(enabled=services.cleanup_enabled(), runs=found, nextLink=link)
    return _paged(body, link)


@router.get(
    "/cleanup/plans/{planId}",
    response_model=models.CleanupPlanOut,
    dependencies=read,
    summary="A stored cleanup plan",
)
def get_cleanup_plan(planId: Annotated[str, Path(max_length=64)]) -> models.CleanupPlanOut:
    return models.CleanupPlanOut.model_validate(services.cleanup_plan(planId).public())


@router.get(
    "/cleanup/runs/{runId}",
    response_model=models.CleanupRunOut,
    dependencies=read,
    summary="A cleanup run record: what it deleted, blocked, kept, and why",
)
def get_cleanup_run(runId: Annotated[str, Path(max_length=64)]) -> models.CleanupRunOut:
    return models.CleanupRunOut.model_validate(services.cleanup_run(runId).public())


@router.post(
    "/resource-groups/{name}/extend",
    response_model=models.LabExtended,
    responses={
        400: _error("invalid input, not a lab, or the expiry would pass CLEANUP_MAX_EXTENSION_HOURS"),
        404: _error("no such resource group"),
        409: _error(
            f"{CLEANUP_OFF}, the group is being deleted, a ReadOnly lock keeps its tags, or cleanup never "
            "deletes it (protected, managed, or an expiry tag that does not parse: the message gives the "
            "plan's reason)"
        ),
    },
    dependencies=operate,
    summary="Extend a lab: push its expiry out by some hours, within CLEANUP_MAX_EXTENSION_HOURS from now",
    description="From the current expiry, or from now when that has passed; never earlier than the current "
    "expiry. The new expiry is written to the lab's expiry tag (CLEANUP_EXPIRY_TAG); the lab's other tags "
    "are left as they are. `hours` is a JSON number.",
)
def extend_lab(
    name: Annotated[str, Path(min_length=1, max_length=90, description="the lab's resource group")],
    body: models.ExtendRequest,
) -> models.LabExtended:
    group = params.resource_group(name)
    expiry = services.extend_lab(group, body.hours, body.subscription)
    return models.LabExtended(name=group, hours=body.hours, expiry=expiry)


# The extend link: served without a function key by its own ANONYMOUS function (function_app.py); the
# link's signature is the authority. Not in the OpenAPI document: it answers a browser with HTML.

LINK_BODY_BYTES = 4096


@router.get("/cleanup/extend-link", include_in_schema=False)
def extend_link_page(t: Annotated[str, Query(max_length=4096)] = "") -> Response:
    """A confirmation page with a POST button: a GET (a prefetched link) changes nothing."""
    try:
        return pages.confirm(services.check_extend_link(t), t)
    except DockmasterError as exc:
        return pages.refused(exc)


@router.post("/cleanup/extend-link", include_in_schema=False)
async def extend_by_link(request: Request) -> Response:
    """The confirmation's POST (form field `t`): the lab extended, once."""
    try:
        body = await read_limited(request, LINK_BODY_BYTES)
        fields = parse_qs(body.decode("ascii", errors="replace"), max_num_fields=4)
        token = fields.get("t", [""])[0]
        link, new = await run_in_threadpool(services.redeem_extend_link, token)
    except DockmasterError as exc:
        return pages.refused(exc)
    except ValueError:
        return pages.refused(InvalidInput("the form is malformed"))
    return pages.extended(link, new)


# Image retention -------------------------------------------------------------------------------------------


RETENTION_OFF = "retention is turned off (RETENTION_ENABLED=false)"


@router.post(
    "/retention/plan",
    response_model=models.RetentionPlanOut,
    responses={409: _error(RETENTION_OFF)},
    dependencies=operate,
    summary="Plan image retention: every tag and manifest, its decision and rule; deletes nothing",
    description="The repositories a retention rule of the policy file applies to, narrowed by the filters. "
    "The plan is stored: execute it by its `planId`.",
)
def plan_retention(
    body: Annotated[models.RetentionPlanRequest | None, Body()] = None,
) -> models.RetentionPlanOut:
    filters = (body or models.RetentionPlanRequest()).filters
    plan = services.plan_retention(filters.model_dump(exclude_none=True))
    return models.RetentionPlanOut.model_validate(plan.public())


@router.post(
    "/retention/execute",
    response_model=models.RetentionRunOut,
    responses={
        404: _error("no such plan"),
        409: _error(f"{RETENTION_OFF}, or the plan is more than 24 hours old: make a new one"),
        503: _error("a dependency is unavailable, or a delete failed in a way worth retrying (detail.runId)"),
    },
    dependencies=operate,
    summary="Execute a reviewed retention plan (confirm: true): deletes only what it and a fresh plan delete",
    description="Right before each delete the manifest or tag is read again (still there, still pointing "
    "where the plan saw it, still unlocked); otherwise it is kept. With RETENTION_DRY_RUN=true or "
    "`dryRun: true` nothing is deleted (outcome `would-delete`). The run is stored: "
    "/api/retention/runs/{runId}.",
)
def execute_retention(body: models.RetentionExecuteRequest) -> models.RetentionRunOut:
    run = services.execute_retention(body.planId, confirm=body.confirm, dry_run=body.dryRun)
    return models.RetentionRunOut.model_validate(run.public())


@router.get(
    "/retention/plans/{planId}",
    response_model=models.RetentionPlanOut,
    dependencies=read,
    summary="A stored retention plan",
)
def get_retention_plan(planId: Annotated[str, Path(max_length=64)]) -> models.RetentionPlanOut:
    return models.RetentionPlanOut.model_validate(services.retention_plan(planId).public())


@router.get(
    "/retention/runs/{runId}",
    response_model=models.RetentionRunOut,
    dependencies=read,
    summary="A retention run record: what it deleted, kept, and why",
)
def get_retention_run(runId: Annotated[str, Path(max_length=64)]) -> models.RetentionRunOut:
    return models.RetentionRunOut.model_validate(services.retention_run(runId).public())
