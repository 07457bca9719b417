"""A final verdict attached to its image as an OCI 1.1 referrer, so a deploy gate can ask the registry.

The referrer is an image manifest in the image's repository whose `subject` is the image's digest, whose
`artifactType` is VERDICT_TYPE, whose config is the OCI empty descriptor and whose one layer is the
verdict as JSON (image-spec v1.1, "Guidelines for Artifact Usage"). Its bytes are made only of what the
verdict fixed when it became final, so pushing it again (a retry, a second worker) yields the same
digest: one referrer per (digest, policy version). A gate finds it with
`GET /v2/<repository>/referrers/<digest>?artifactType=application/vnd.dockmaster.verdict.v1+json`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from .clock import exact
from .errors import InvalidInput
from .registry import RegistryClient
from .verdicts import Verdict

VERDICT_TYPE = "application/vnd.dockmaster.verdict.v1+json"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_BLOB = b"{}"
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
STATUS = "vnd.dockmaster.verdict.status"
POLICY_VERSION = "vnd.dockmaster.verdict.policy-version"
CREATED = "org.opencontainers.image.created"  # what `oras discover` and gates sort referrers by
TITLE = "org.opencontainers.image.title"
REMEMBERED_REPOSITORIES = 10_000  # holding the empty blob; forgotten all at once past it
ATTACHED = ("passed", "failed")  # a superseded verdict checked nothing a gate could rely on


def _rfc3339(moment: dt.datetime | None) -> str:
    return (
        (moment or dt.datetime.min.replace(tzinfo=dt.UTC))
        .astimezone(dt.UTC)
        .isoformat()
        .replace("+00:00", "Z")
    )


def _canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def verdict_document(verdict: Verdict) -> dict[str, Any]:
    """The layer: the verdict as a gate reads it. Nothing that changes after the verdict is final (later
    deliveries, tags judged later, actions applied) is in it."""
    tag_result = verdict.tag_results.get(verdict.tag) if verdict.tag else None
    smoke = None
    if verdict.run_id:
        smoke = {"runId": verdict.run_id, "image": verdict.run_digest, **verdict.run_result}
    return {
        "schemaVersion": 1,
        "registry": verdict.registry,
        "repository": verdict.repository,
        "digest": verdict.digest,
        "tag": verdict.tag,
        "tagResult": tag_result,
        "status": verdict.status,
        "policyVersion": verdict.policy_version,
        "checks": verdict.checks,
        "images": verdict.images or None,
        "smokeRun": smoke,
        "createdAt": exact(verdict.created_at),
        "completedAt": exact(verdict.completed_at),
        "causes": verdict.events[: verdict.final_events or len(verdict.events)],
    }


def referrer_manifest(verdict: Verdict, layer: bytes, subject: tuple[str, int]) -> bytes:
    subject_type, subject_size = subject
    return _canonical(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "artifactType": VERDICT_TYPE,
            "config": {"mediaType": EMPTY_TYPE, "digest": EMPTY_DIGEST, "size": len(EMPTY_BLOB)},
            "layers": [
                {
                    "mediaType": VERDICT_TYPE,
                    "digest": "sha256:" + hashlib.sha256(layer).hexdigest(),
                    "size": len(layer),
                    "annotations": {TITLE: "verdict.json"},
                }
            ],
            "subject": {"mediaType": subject_type, "digest": verdict.digest, "size": subject_size},
            "annotations": {
                STATUS: verdict.status,
                POLICY_VERSION: verdict.policy_version,
                CREATED: _rfc3339(verdict.completed_at),
            },
        }
    )


class Attacher:
    """Pushes referrers through a registry's client; remembers the repositories holding the empty blob
    (every referrer's config) so it is checked once per repository and process."""

    def __init__(self) -> None:
        self._has_empty: set[tuple[str, str]] = set()

    def attach(self, client: RegistryClient, verdict: Verdict) -> str:
        """Push the verdict's referrer: the layer (2 requests), the empty config the first time (1–3),
        the manifest (1). The digest of the referrer. Raises the registry's errors (NotFound: the image
        is gone; AccessDenied: no push right)."""
        subject = verdict.subject
        if subject is None:
            subject = client.manifest_descriptor(verdict.repository, verdict.digest)
        layer = _canonical(verdict_document(verdict))
        manifest = referrer_manifest(verdict, layer, subject)
        client.push_blob(verdict.repository, layer)
        where = (client.login_server, verdict.repository)
        remembered = where in self._has_empty
        if not remembered:
            self._ensure_empty(client, verdict.repository)
            if len(self._has_empty) >= REMEMBERED_REPOSITORIES:
                self._has_empty.clear()
            self._has_empty.add(where)
        try:
            return client.put_manifest(verdict.repository, manifest, MANIFEST_TYPE)
        except InvalidInput:  # MANIFEST_BLOB_UNKNOWN: the empty blob went since (garbage collected)
            if not remembered:
                raise
            self._has_empty.discard(where)
            self._ensure_empty(client, verdict.repository)
            return client.put_manifest(verdict.repository, manifest, MANIFEST_TYPE)

    @staticmethod
    def _ensure_empty(client: RegistryClient, repository: str) -> None:
        if not client.has_blob(repository, EMPTY_DIGEST):
            client.push_blob(repository, EMPTY_BLOB)
