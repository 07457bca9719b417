"""Pushing a verdict's referrer against devstack's registry front with the app's own client: what it costs,
and the empty config blob gone from the repository since it was last seen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shared import referrers
from shared.verdicts import Verdict
from shared.verification import Verifier
from tests.support.images import image_context
from tests.support.tasks import build
from tests.support.verification import pushed


def test_a_referrer_costs_three_requests_once_the_repository_is_known_and_survives_a_lost_empty_blob(
    verifier: Verifier,
    tasks_client: Any,
    registry: Any,
    hello_context: Path,
    data_client: Any,
    tmp_path: Path,
) -> None:
    verdicts = []
    for n in range(3):
        context = image_context(tmp_path, hello_context, f'["/bin/busybox", "echo", "{n}"]')
        digest = build(tasks_client, registry, context, f"nosmoke/pushcost:v{n}")
        verdict = verifier.handle_event(pushed(registry, "nosmoke/pushcost", f"v{n}", digest))
        assert isinstance(verdict, Verdict)
        verdicts.append(verdict)
    client = verifier.registry_data(verifier.settings.registries[registry.name.lower()])
    attacher = referrers.Attacher()

    before = client.requests
    first = attacher.attach(client, verdicts[0])
    assert first == verdicts[0].referrer, "the same bytes as the verifier pushed: the same manifest"
    assert client.requests - before == 4, "layer POST+PUT, HEAD of the empty blob, manifest PUT"

    before = client.requests
    assert attacher.attach(client, verdicts[1]) == verdicts[1].referrer
    assert client.requests - before == 3, "the empty blob is known to be there: layer POST+PUT, manifest PUT"

    # Gone since (a registry's garbage collection): the manifest PUT is refused, the blob pushed again.
    data_client.delete_blob("nosmoke/pushcost", referrers.EMPTY_DIGEST)
    before = client.requests
    assert attacher.attach(client, verdicts[2]) == verdicts[2].referrer
    assert client.requests - before == 7, "layer POST+PUT, manifest PUT refused, HEAD, POST+PUT, manifest PUT"
    empty = data_client.download_blob("nosmoke/pushcost", referrers.EMPTY_DIGEST)
    assert b"".join(empty) == referrers.EMPTY_BLOB
