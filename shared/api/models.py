"""The API's request and response documents (camelCase, as Azure's own APIs)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

MAX_ARGS = 64
MAX_ARG_LENGTH = 1024
MAX_IMAGES = 16

Arg = Annotated[str, StringConstraints(max_length=MAX_ARG_LENGTH, pattern=r"^[^\x00-\x1f\x7f]*$")]
ImageName = Annotated[str, StringConstraints(min_length=1, max_length=512)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Errors ---------------------------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    code: str = Field(examples=["InvalidInput"])
    message: str
    detail: Any | None = None


class ErrorResponse(BaseModel):
    """Every error: `{"error": {"code", "message", "detail"?}}`."""

    error: ErrorDetail


# Health ---------------------------------------------------------------------------------------------------


class DependencyStatus(BaseModel):
    name: str = Field(examples=["storage", "arm", "registry:dockmasterlab"])
    kind: Literal["table", "arm", "registry"]
    status: Literal["ok", "failing", "timeout", "skipped"]
    latencyMs: float | None = None
    error: str | None = None


class Health(BaseModel):
    status: Literal["ok", "failing"]
    checks: list[DependencyStatus] = Field(default_factory=list, description="only with ?deep=true")


# Registries -----------------------------------------------------------------------------------------------


class RegistryOut(BaseModel):
    name: str
    loginServer: str
    resourceId: str


class RegistryList(BaseModel):
    registries: list[RegistryOut]


class RepositoryPage(BaseModel):
    registry: str
    repositories: list[str]
    nextLink: str | None = Field(None, description="the next page, also in the Link header")


class TagAttributes(BaseModel):
    writeEnabled: bool | None = None
    deleteEnabled: bool | None = None
    readEnabled: bool | None = None
    listEnabled: bool | None = None


class TagResult(BaseModel):
    status: Literal["passed", "failed"]
    reason: str
    action: str | None = None


class VerdictSummary(BaseModel):
    id: str
    status: str = Field(
        description="this tag's status: its digest's verdict, or failed when the tag breaks the tag rules"
    )
    digestStatus: str = Field(description="the verdict of the digest the tag points to")
    tagRules: TagResult | None = Field(None, description="the tag judged on the policy's tag rules")
    policyVersion: str
    completedAt: str | None = None


class TagOut(BaseModel):
    name: str
    digest: str
    createdTime: str | None = None
    lastUpdateTime: str | None = None
    changeableAttributes: TagAttributes
    verdict: VerdictSummary | None = Field(None, description="for this digest under the current policy")


class TagPage(BaseModel):
    registry: str
    repository: str
    policyVersion: str
    tags: list[TagOut]
    nextLink: str | None = None


# ACR Tasks ------------------------------------------------------------------------------------------------


class BuildFromUrl(Strict):
    """A build from a context the registry fetches itself (`az acr build <URL>`)."""

    sourceUrl: str = Field(description="https URL of a tar.gz or a git repository")
    images: list[ImageName] = Field(min_length=1, max_length=MAX_IMAGES, examples=[["hello:v1"]])
    dockerfile: str = "Dockerfile"
    buildArgs: dict[str, str] = Field(default_factory=dict)
    platform: str = "linux/amd64"
    push: bool = True
    noCache: bool = False
    timeoutSeconds: int = Field(3600, ge=300, le=28800)


class RunRequest(Strict):
    """`az acr run --cmd`: an image of this registry, run with arguments."""

    image: ImageName = Field(
        description="repository:tag or repository@sha256:… in this registry (its login server may prefix "
        "it); any other host is refused",
        examples=["hello@sha256:0f3e…", "hello:v1"],
    )
    args: list[Arg] = Field(default_factory=list, max_length=MAX_ARGS)
    timeoutSeconds: int = Field(600, ge=60, le=28800)


class RunAccepted(BaseModel):
    registry: str
    runId: str
    status: str
    location: str


class OutputImage(BaseModel):
    registry: str | None = None
    repository: str | None = None
    tag: str | None = None
    digest: str | None = None


class RunOut(BaseModel):
    registry: str
    runId: str
    status: str
    finished: bool
    runType: str | None = None
    createTime: str | None = None
    startTime: str | None = None
    finishTime: str | None = None
    lastUpdatedTime: str | None = None
    platform: dict[str, str] | None = None
    outputImages: list[OutputImage] = Field(default_factory=list)
    error: str | None = None


class RunList(BaseModel):
    registry: str
    runs: list[RunOut] = Field(description="newest first")


# Verification ---------------------------------------------------------------------------------------------


class VerificationRequest(Strict):
    registry: str = Field(max_length=64, description="the configured registry name")
    repository: str = Field(max_length=256)
    tag: str | None = Field(None, max_length=128)
    digest: str | None = Field(None, max_length=71)

    @model_validator(mode="after")
    def _tag_or_digest(self) -> VerificationRequest:
        if self.tag is None and self.digest is None:
            raise ValueError("name a tag or a digest (or both: the tag must still point to the digest)")
        return self


class CheckOut(BaseModel):
    name: str
    status: str
    reason: str


class VerificationOut(BaseModel):
    id: str
    registry: str
    repository: str
    digest: str
    tag: str | None = None
    policyVersion: str
    status: Literal["pending", "running", "passed", "failed", "superseded"]
    final: bool = Field(description="the verdict is in and its actions are applied: stop polling")
    checks: list[CheckOut] = Field(default_factory=list)
    runId: str | None = None
    actions: list[str] = Field(default_factory=list)
    pendingActions: list[str] = Field(default_factory=list)
    deleted: bool = False
    events: list[str] = Field(
        default_factory=list, description="event ids and api:<id> causes (the first 100: see eventCount)"
    )
    eventCount: int = Field(0, description="every event and api call recorded for this verdict")
    tagResults: dict[str, TagResult] = Field(
        default_factory=dict, description="each tag pushed for this digest, judged on the tag rules"
    )
    images: dict[str, Literal["passed", "failed"]] = Field(
        default_factory=dict, description="an index's images (digest → result), checked with it"
    )
    runDigest: str | None = Field(None, description="the image the smoke run ran (an index's linux/amd64)")
    referrer: str | None = Field(
        None,
        description="the digest of the OCI referrer this verdict is attached to its image as (artifactType "
        "application/vnd.dockmaster.verdict.v1+json); null until attached, or when it was not (see actions)",
    )
    createdAt: str | None = None
    completedAt: str | None = None


class VerdictHistory(BaseModel):
    registry: str
    repository: str
    verifications: list[VerificationOut]


# Cleanup --------------------------------------------------------------------------------------------------
# The response documents are the cleanup records' public() forms (shared/cleanup/records.py).

Decision = Literal[
    "delete", "deferred", "warn", "keep", "blocked", "protected", "managed", "deleting", "invalid-expiry"
]
Result = Literal["deleted", "would-delete", "blocked", "failed", "gone", "kept", "not-reviewed"]


class CleanupFilters(Strict):
    """Filters only narrow the configured cleanup: they never make a lab of a group the settings do not."""

    subscriptions: list[Annotated[str, StringConstraints(max_length=64)]] = Field(
        default_factory=list, max_length=50, description="among the configured ones; empty: all of them"
    )
    namePatterns: list[Annotated[str, StringConstraints(max_length=90)]] = Field(
        default_factory=list, max_length=50, description="resource group name globs, e.g. az204-*"
    )
    labTag: str | None = Field(None, max_length=512, description="name=value (or name) a lab must also have")
    olderThanHours: float | None = Field(None, gt=0, le=24 * 365, description="only labs at least this old")
    maxDeletions: int | None = Field(
        None, ge=0, le=1000, description="lowers the per-run cap, never raises it"
    )


class CleanupPlanRequest(Strict):
    filters: CleanupFilters = Field(default_factory=CleanupFilters)


class CleanupExecuteRequest(Strict):
    planId: str | None = Field(None, max_length=128, description="a plan returned by /api/cleanup/plan")
    filters: CleanupFilters | None = Field(None, description="instead of planId: plan with these and execute")
    confirm: bool = Field(strict=True, description="must be true: execution deletes resource groups")
    dryRun: bool | None = Field(
        None,
        strict=True,
        description="true: delete nothing, report what would go (false never overrides CLEANUP_DRY_RUN)",
    )

    @field_validator("confirm")
    @classmethod
    def _confirmed(cls, value: bool) -> bool:
        if value is not True:
            raise ValueError("confirm must be true: execution deletes resource groups")
        return value

    @model_validator(mode="after")
    def _plan_or_filters(self) -> CleanupExecuteRequest:
        if (self.planId is None) == (self.filters is None):
            raise ValueError("give exactly one of planId and filters")
        return self


class CleanupGroup(BaseModel):
    subscription: str
    name: str
    decision: Decision
    reason: str
    expiry: str | None = Field(None, description="UTC, ISO 8601; null when it could not be determined")
    expirySource: str | None = Field(
        None, examples=["expiry-tag"], description="expiry-tag, relative, created, first-seen or first-sight"
    )
    notes: list[str] = Field(default_factory=list, description="tags stamped, warnings sent while planning")


class CleanupPlanOut(BaseModel):
    planId: str = Field(examples=["plan-20261129T080000Z-0a1b2c3d"])
    createdAt: str
    dryRun: bool = Field(description="CLEANUP_DRY_RUN when the plan was made")
    maxDeletions: int = Field(description="the per-run cap this plan applied")
    subscriptions: list[str]
    filters: CleanupFilters
    scanned: int = Field(description="resource groups listed")
    pages: int = Field(description="ARM list pages read")
    counts: dict[str, int] = Field(description="labs per decision")
    groups: list[CleanupGroup] = Field(description="every lab with its decision and reason")


class CleanupPlanSummary(BaseModel):
    planId: str
    createdAt: str
    dryRun: bool
    counts: dict[str, int] = Field(description="labs per decision")
    filters: CleanupFilters
    deletions: list[str] = Field(description="the labs it would delete (a long list ends with '…')")


class CleanupPlanList(BaseModel):
    enabled: bool = Field(description="CLEANUP_ENABLED now; stored plans stay readable while it is off")
    plans: list[CleanupPlanSummary] = Field(
        description="newest first; the whole plan at /api/cleanup/plans/{id}"
    )
    nextLink: str | None = Field(None, description="the next page, also in the Link header")


class HeldResource(BaseModel):
    type: str
    name: str
    id: str


class CleanupOutcome(BaseModel):
    subscription: str
    name: str
    result: Result
    reason: str
    expiry: str | None = None
    transient: bool = Field(False, description="failed in a way worth retrying")
    held: list[HeldResource] = Field(
        default_factory=list, description="the group's resources right before its delete (the first 200)"
    )
    heldCount: int = Field(0, description="how many resources it held")
    heldByType: dict[str, int] = Field(default_factory=dict, description="what it held, by resource type")
    locks: list[str] = Field(default_factory=list, description="its locks then: name (level, on what)")
    residue: list[str] = Field(
        default_factory=list,
        description="what refuses the delete (locks on resources inside) or may outlive it (known types)",
    )


class CleanupRunOut(BaseModel):
    runId: str = Field(examples=["run-20261129T080000Z-0a1b2c3d"])
    trigger: str = Field(description="api or timer")
    dryRun: bool
    startedAt: str
    finishedAt: str | None = Field(
        None,
        description="null while the run goes on; a run interrupted mid-batch keeps null, and its plan "
        "names every group it may have deleted",
    )
    planId: str = Field(description="the fresh plan the run acted on")
    reviewedPlanId: str | None = Field(None, description="the plan the caller executed, if any")
    counts: dict[str, int] = Field(description="outcomes per result")
    deleted: list[str] = Field(description="groups whose delete ARM accepted (they are Deleting)")
    blocked: list[str] = Field(description="groups a lock kept")
    failed: list[str]
    outcomes: list[CleanupOutcome]
    notes: list[str] = Field(default_factory=list)
    error: str | None = Field(
        None,
        description="why the run stopped before acting (Azure throttled or refused the listing, storage "
        "failed); its plan is then empty and nothing was deleted",
    )
    plan: CleanupPlanOut


class CleanupRunSummary(BaseModel):
    runId: str
    trigger: str
    dryRun: bool
    startedAt: str
    finishedAt: str | None = Field(None, description="null while it runs, or when it was interrupted")
    planId: str
    reviewedPlanId: str | None = None
    counts: dict[str, int] = Field(description="outcomes per result")
    deleted: list[str]
    blocked: list[str]
    failed: list[str]
    error: str | None = None


class CleanupRunList(BaseModel):
    enabled: bool = Field(description="CLEANUP_ENABLED now; stored runs stay readable while it is off")
    runs: list[CleanupRunSummary] = Field(
        description="newest first; the whole record at /api/cleanup/runs/{id}"
    )
    nextLink: str | None = Field(None, description="the next page, also in the Link header")


class ExtendRequest(Strict):
    # strict: a JSON number only (`true` is not 1, "2" is not 2); no NaN or infinity.
    hours: float = Field(
        gt=0,
        le=100_000,
        strict=True,
        allow_inf_nan=False,
        description="push the expiry out by this many hours",
    )
    subscription: str | None = Field(
        None, max_length=64, description="the lab's subscription; default: the first configured for cleanup"
    )


class LabExtended(BaseModel):
    name: str
    hours: float
    expiry: dt.datetime = Field(description="the new expiry, written to the lab's expiry tag")


# Image retention ------------------------------------------------------------------------------------------
# The response documents are the retention records' public() forms (shared/retention/records.py).

RetentionDecision = Literal["delete", "untag", "deferred", "keep", "protected"]
RetentionResult = Literal["deleted", "would-delete", "kept", "not-reviewed", "gone", "failed"]
RepositoryGlob = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class RetentionFilters(Strict):
    """Filters only narrow: repositories no retention rule applies to are never in a plan."""

    registry: str | None = Field(
        None, max_length=64, description="a configured registry's name; default: all"
    )
    repositories: list[RepositoryGlob] = Field(
        default_factory=list, max_length=50, description="repository names or globs, e.g. app/*"
    )


class RetentionPlanRequest(Strict):
    filters: RetentionFilters = Field(default_factory=RetentionFilters)


class RetentionExecuteRequest(Strict):
    planId: str = Field(max_length=128, description="a plan returned by /api/retention/plan")
    confirm: bool = Field(strict=True, description="must be true: execution deletes images")
    dryRun: bool | None = Field(
        None,
        strict=True,
        description="true: delete nothing, report what would go (false never overrides RETENTION_DRY_RUN)",
    )

    @field_validator("confirm")
    @classmethod
    def _confirmed(cls, value: bool) -> bool:
        if value is not True:
            raise ValueError("confirm must be true: execution deletes images")
        return value


class RetentionItem(BaseModel):
    registry: str
    repository: str
    kind: Literal["tag", "manifest"]
    name: str = Field(description="the tag, or the manifest's digest")
    digest: str
    decision: RetentionDecision
    rule: str = Field(
        description="the rule that decided (retention.rules[i].keep[j] …) or the protection (locked, "
        "min-age, verifying, kept-tag, index, referrer, unlisted), or none"
    )
    reason: str
    updated: str | None = Field(
        None, description="the tag's or manifest's last update, as the registry lists it"
    )
    tags: list[str] = Field(default_factory=list, description="a manifest's tags")
    mediaType: str = ""


class RetentionPlanOut(BaseModel):
    planId: str = Field(examples=["plan-20261129T023000Z-0a1b2c3d"])
    createdAt: str
    dryRun: bool = Field(description="RETENTION_DRY_RUN when the plan was made")
    filters: RetentionFilters
    requests: int = Field(description="registry requests the plan took")
    counts: dict[str, int] = Field(description="items per kind:decision")
    repositories: list[dict[str, Any]] = Field(
        description="per repository: its rule, manifests, tags, cap, deletions"
    )
    items: list[RetentionItem] = Field(
        description="every tag and manifest with its decision, rule and reason"
    )
    omitted: int | None = Field(
        None, description="kept items left out of a stored plan too large to hold them"
    )


class RetentionOutcome(RetentionItem):
    result: RetentionResult
    planReason: str = Field("", description="why the plan deleted it")
    transient: bool = False


class RetentionRunOut(BaseModel):
    runId: str = Field(examples=["run-20261129T023000Z-0a1b2c3d"])
    trigger: str = Field(description="api or timer")
    dryRun: bool
    startedAt: str
    finishedAt: str | None = None
    planId: str = Field(description="the fresh plan the run acted on")
    reviewedPlanId: str | None = None
    counts: dict[str, int]
    deleted: list[str] = Field(description="repository:tag untagged, repository@digest deleted")
    failed: list[str]
    outcomes: list[RetentionOutcome]
    notes: list[str] = Field(default_factory=list)
    error: str | None = None
    plan: RetentionPlanOut
