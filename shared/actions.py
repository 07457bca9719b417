"""A final verdict's actions on the registry: lock what passed, quarantine what failed. Each returns what
it did, in words, for the verdict's record."""

from __future__ import annotations

from .registry import RegistryClient
from .verdicts import Verdict

LOCKED = {"writeEnabled": False, "deleteEnabled": False}


def lock(client: RegistryClient, verdict: Verdict) -> str:
    """Lock the digest that passed (an index with its images), and each passed tag that still points
    to it: a tag moved on to another image is left as it is, and said so."""
    for digest in (verdict.digest, *verdict.images):
        client.update_manifest(verdict.repository, digest, LOCKED)
    done = [f"locked {verdict.digest}" + (f" and its {len(verdict.images)} images" if verdict.images else "")]
    passed = [t for t, r in verdict.tag_results.items() if r.get("status") == "passed"]
    for tag in dict.fromkeys([*([verdict.tag] if verdict.tag else []), *passed]):
        done.append(lock_tag(client, verdict.repository, tag, verdict.digest))
    return "; ".join(done)


def lock_tag(client: RegistryClient, repository: str, tag: str, digest: str) -> str:
    """Lock `tag` only while it points to `digest`: read, lock, read again. A push between the first
    read and the lock moved the tag: its attributes are put back as they were. Once locked, the tag
    cannot move."""
    current, attributes = client.tag_target(repository, tag)
    if current != digest:
        return f"tag {tag} not locked: it points to {current or 'nothing'} now"
    client.update_tag(repository, tag, LOCKED)
    after, _ = client.tag_target(repository, tag)
    if after != digest:
        client.update_tag(repository, tag, {key: bool(attributes.get(key, True)) for key in LOCKED})
        return f"tag {tag} not locked: it moved to {after or 'nothing'} while being locked"
    return f"locked tag {tag}"


def quarantine(client: RegistryClient, verdict: Verdict) -> str:
    """readEnabled=false on the digest and on each image of an index that failed its checks (an image
    that passed may be shared with another index, and stays readable)."""
    bad = [digest for digest, status in verdict.images.items() if status == "failed"]
    for digest in (verdict.digest, *bad):
        client.update_manifest(verdict.repository, digest, {"readEnabled": False})
    return (
        f"quarantined {verdict.digest}"
        + (f" and {len(bad)} of its images" if bad else "")
        + (" (readEnabled=false)")
    )


def quarantine_tag(client: RegistryClient, repository: str, tag: str) -> str:
    """readEnabled=false on a tag that broke the tag rules."""
    client.update_tag(repository, tag, {"readEnabled": False})
    return f"quarantined tag {tag} (readEnabled=false)"
