"""The verdict's OCI referrer (shared/referrers.py): an OCI 1.1 artifact manifest whose bytes depend only
on what the verdict fixed when it became final, so a retry pushes the same manifest."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import replace

from shared import referrers
from shared.verdicts import Verdict

NOW = dt.datetime(2026, 12, 4, 8, 0, 0, tzinfo=dt.UTC)
DIGEST = "sha256:" + "a" * 64
SUBJECT = ("application/vnd.oci.image.manifest.v1+json", 1234)


def final_verdict() -> Verdict:
    return Verdict(
        "reg",
        "app/web",
        DIGEST,
        "2026.11.1",
        "1.0",
        status="failed",
        checks=[{"name": "root-user", "status": "failed", "reason": "runs as root"}],
        run_id="cab1",
        run_digest=DIGEST,
        run_result={"status": "Failed", "exitStatus": 3, "logDigest": "sha256:" + "c" * 64},
        events=["e1", "e2"],
        final_events=2,
        tag_results={"1.0": {"status": "passed", "reason": "no tag rules"}},
        subject=SUBJECT,
        created_at=NOW,
        completed_at=NOW + dt.timedelta(seconds=3),
    )


def layer_and_manifest(verdict: Verdict) -> tuple[bytes, bytes]:
    layer = json.dumps(referrers.verdict_document(verdict), sort_keys=True, separators=(",", ":")).encode()
    return layer, referrers.referrer_manifest(verdict, layer, SUBJECT)


def test_the_referrer_is_an_oci_artifact_whose_subject_is_the_image() -> None:
    layer, raw = layer_and_manifest(final_verdict())
    manifest = json.loads(raw)
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["artifactType"] == referrers.VERDICT_TYPE
    assert manifest["config"] == {
        "mediaType": "application/vnd.oci.empty.v1+json",
        "digest": "sha256:" + hashlib.sha256(b"{}").hexdigest(),
        "size": 2,
    }
    assert manifest["subject"] == {"mediaType": SUBJECT[0], "digest": DIGEST, "size": SUBJECT[1]}
    (only,) = manifest["layers"]
    assert only["digest"] == "sha256:" + hashlib.sha256(layer).hexdigest()
    assert (only["mediaType"], only["size"]) == (referrers.VERDICT_TYPE, len(layer))
    assert manifest["annotations"] == {
        referrers.STATUS: "failed",
        referrers.POLICY_VERSION: "2026.11.1",
        referrers.CREATED: "2026-12-04T08:00:03Z",
    }


def test_the_layer_holds_the_verdict_a_gate_needs() -> None:
    document = referrers.verdict_document(final_verdict())
    assert document["status"] == "failed"
    assert document["checks"] == [{"name": "root-user", "status": "failed", "reason": "runs as root"}]
    assert document["smokeRun"] == {
        "runId": "cab1",
        "image": DIGEST,
        "status": "Failed",
        "exitStatus": 3,
        "logDigest": "sha256:" + "c" * 64,
    }
    assert (document["causes"], document["policyVersion"], document["tag"]) == (
        ["e1", "e2"],
        "2026.11.1",
        "1.0",
    )


def test_what_changes_after_the_verdict_is_final_does_not_change_the_referrer() -> None:
    first = final_verdict()
    later = replace(
        first,
        events=["e1", "e2", "e3"],
        event_count=3,
        tag_results={**first.tag_results, "latest": {"status": "passed", "reason": "no tag rules"}},
        actions=["quarantined sha256:…"],
        published=True,
    )
    assert layer_and_manifest(later) == layer_and_manifest(first)
    newer_policy = replace(first, policy_version="2026.12.1")
    assert layer_and_manifest(newer_policy)[1] != layer_and_manifest(first)[1]
