"""OCI 1.1 referrers on the registry front, with a standard OCI client from outside the project (oras-py):
logged in as a user logs in to ACR, it attaches artifacts to an image, discovers them through
`/v2/<name>/referrers/<digest>` (filtered, page by page) and pulls one back; a subject's delete takes its
referrers with it."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import oras.auth.utils
import oras.defaults
import oras.oci
import oras.provider
import pytest
import requests
from azure.containerregistry import ContainerRegistryClient
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from tests.support.oras import Oras, digests, discover, login
from tests.support.stack import Devstack, group_of, new_registry, unique

VERDICT = "application/vnd.example.verdict.v1+json"
SBOM = "application/vnd.example.sbom.v1+json"
SIGNATURE = "application/vnd.example.signature.v1"
EMPTY = "application/vnd.oci.empty.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture(scope="module")
def registry(resource_client: Any, acr_client: Any) -> Iterator[Any]:
    created = new_registry(resource_client, acr_client, "refs")
    yield created
    resource_client.resource_groups.begin_delete(group_of(created.id), polling=False)


@pytest.fixture(scope="module")
def data_client(registry: Any, credential: Any, devstack: Devstack) -> ContainerRegistryClient:
    return ContainerRegistryClient(f"https://{registry.login_server}", credential, audience=devstack.arm)


@pytest.fixture(scope="module")
def client(registry: Any, devstack: Devstack, tmp_path_factory: pytest.TempPathFactory) -> Oras:
    return login(
        registry.login_server,
        devstack.arm,
        str(devstack.endpoints["caBundle"]),
        tmp_path_factory.mktemp("oras"),
    )


def push_image(data_client: ContainerRegistryClient, repository: str) -> oras.oci.Subject:
    """A config-only image, tagged v1, made from local bytes: the subject to attach to."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "note": unique("")}).encode()
    digest, size = data_client.upload_blob(repository, io.BytesIO(config))
    document = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest, "size": size},
        "layers": [],
    }
    raw = json.dumps(document).encode()
    pushed = data_client.set_manifest(repository, io.BytesIO(raw), tag="v1", media_type=MANIFEST)
    return oras.oci.Subject(mediaType=MANIFEST, digest=pushed, size=len(raw))


def attach(
    oras_: Oras, repository: str, subject: oras.oci.Subject, artifact_type: str, note: str
) -> tuple[str, requests.Response]:
    """An artifact pushed by digest (no tag) with oras-py's blob and manifest uploads, as the product
    pushes a verdict: the OCI empty config, one layer of the artifact's own type, `subject`,
    `artifactType`, annotations. Its digest, and the registry's answer to the manifest PUT."""
    layer_file = oras_.files / f"{unique('layer')}.json"
    layer_file.write_text(json.dumps({"note": note}))
    empty = oras_.files / "empty.json"
    empty.write_text("{}")
    reference = oras_.reference(repository, "v1")
    layer = oras.oci.NewLayer(str(layer_file), media_type=artifact_type)
    layer["annotations"] = {oras.defaults.annotation_title: "note.json"}
    config = {"mediaType": EMPTY, "digest": oras.defaults.blank_config_hash, "size": 2}
    for path, descriptor in ((layer_file, layer), (empty, config)):
        uploaded = oras_.client.upload_blob(str(path), reference, descriptor)
        assert uploaded.status_code in (200, 201), uploaded.text
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "artifactType": artifact_type,
        "config": config,
        "layers": [layer],
        "subject": {"mediaType": subject.mediaType, "digest": subject.digest, "size": subject.size},
        "annotations": {"org.example.note": note},
    }
    digest = oras.oci.Subject.from_manifest(manifest).digest  # the bytes requests sends for json=
    answer = oras_.client.upload_manifest(
        manifest, oras_.client.get_container(oras_.reference(repository, f"@{digest}"))
    )
    return digest, answer


def test_oras_attaches_discovers_and_pulls_referrers(
    client: Oras, data_client: ContainerRegistryClient, tmp_path: Path
) -> None:
    """Three verdicts pushed by digest and an SBOM pushed by `oras push` (tagged, its type its config's
    media type), discovered with and without the artifactType filter across pages; one pulled back."""
    repository = f"attached/{unique('a')}"
    image = push_image(data_client, repository)
    client.authorize(repository)
    verdicts = []
    for n in range(3):
        digest, answer = attach(client, repository, image, VERDICT, f"verdict {n}")
        assert (answer.status_code, answer.headers["OCI-Subject"]) == (201, image.digest)
        assert answer.headers["Docker-Content-Digest"] == digest
        verdicts.append(digest)
    sbom_file = tmp_path / "sbom.json"
    sbom_file.write_text('{"packages": []}')
    pushed = client.client.push(
        client.reference(repository, "sbom"),
        files=[f"{sbom_file}:application/spdx+json"],
        manifest_config=f"{tmp_path / 'absent'}:{SBOM}",
        subject=image,
        disable_path_validation=True,
        config_path=client.config,
    )
    assert (pushed.status_code, pushed.headers["OCI-Subject"]) == (201, image.digest)
    sbom = pushed.headers["Docker-Content-Digest"]

    everything = discover(client, repository, image.digest)
    assert [len(page["manifests"]) for page in everything] == [2, 2], "a page of 2: the Link was followed"
    assert digests(everything) == sorted([*verdicts, sbom])
    by_digest = {m["digest"]: m for page in everything for m in page["manifests"]}
    fetched = client.client.do_request(
        f"https://{client.host}/v2/{repository}/manifests/{verdicts[0]}", "GET", headers={"Accept": MANIFEST}
    )
    assert by_digest[verdicts[0]] == {
        "mediaType": MANIFEST,
        "digest": verdicts[0],
        "size": len(fetched.content),
        "artifactType": VERDICT,
        "annotations": {"org.example.note": "verdict 0"},
    }
    assert by_digest[sbom]["artifactType"] == SBOM  # no artifactType: its config's media type
    assert digests(discover(client, repository, image.digest, VERDICT)) == sorted(verdicts)
    assert digests(discover(client, repository, image.digest, SBOM)) == [sbom]

    manifest = client.client.get_manifest(client.reference(repository, f"@{verdicts[1]}"))
    assert (manifest["subject"]["digest"], manifest["artifactType"]) == (image.digest, VERDICT)
    pulled = client.client.pull(client.reference(repository, f"@{verdicts[1]}"), outdir=str(tmp_path / "out"))
    assert [Path(p).read_text() for p in pulled] == ['{"note": "verdict 1"}']


def test_docker_registry_keeps_a_referrer_pushed_by_digest_as_sent(
    client: Oras, data_client: ContainerRegistryClient
) -> None:
    """docker-registry 2.8 behind the front takes an OCI manifest with `subject`, `artifactType`, the empty
    config and a layer of a custom type, by digest, and serves back the same bytes; the subject need not
    exist yet (the spec: referrers and subject in either order)."""
    repository = f"kept/{unique('k')}"
    absent = oras.oci.Subject(mediaType=MANIFEST, digest="sha256:" + "1" * 64, size=10)
    push_image(data_client, repository)
    client.authorize(repository)
    digest, answer = attach(client, repository, absent, VERDICT, "early")
    assert (answer.status_code, answer.headers["OCI-Subject"]) == (201, absent.digest)
    served = client.client.do_request(
        f"https://{client.host}/v2/{repository}/manifests/{digest}", "GET", headers={"Accept": MANIFEST}
    )
    assert served.headers["Docker-Content-Digest"] == digest
    assert json.loads(served.content)["subject"]["digest"] == absent.digest
    assert digests(discover(client, repository, absent.digest)) == [digest]
    assert discover(client, repository, "sha256:" + "2" * 64) == [{"manifests": []}]  # never a 404
    never = f"never/{unique('n')}"
    client.authorize(never, "pull")
    assert discover(client, never, absent.digest) == [{"manifests": []}]
    client.authorize(repository)
    invalid = client.client.do_request(f"https://{client.host}/v2/{repository}/referrers/sha256:zz", "GET")
    assert (invalid.status_code, invalid.json()["errors"][0]["code"]) == (400, "DIGEST_INVALID")


def test_a_referrer_pushed_after_a_query_shows_and_a_deleted_one_disappears(
    client: Oras, data_client: ContainerRegistryClient
) -> None:
    repository = f"fresh/{unique('f')}"
    image = push_image(data_client, repository)
    client.authorize(repository)
    assert digests(discover(client, repository, image.digest)) == []
    first, _ = attach(client, repository, image, VERDICT, "first")
    assert digests(discover(client, repository, image.digest)) == [first]
    second, _ = attach(client, repository, image, VERDICT, "second")
    assert digests(discover(client, repository, image.digest)) == sorted([first, second])
    data_client.delete_manifest(repository, first)
    assert digests(discover(client, repository, image.digest)) == [second]


def test_a_referrer_attaches_to_a_locked_image(client: Oras, data_client: ContainerRegistryClient) -> None:
    """A referrer is a new manifest pushed by digest: no attribute of its write-locked subject governs it
    (ACR documents nothing either way)."""
    repository = f"locked/{unique('l')}"
    image = push_image(data_client, repository)
    client.authorize(repository)
    data_client.update_manifest_properties(repository, image.digest, can_write=False, can_delete=False)
    data_client.update_tag_properties(repository, "v1", can_write=False, can_delete=False)
    digest, answer = attach(client, repository, image, VERDICT, "after the lock")
    assert answer.status_code == 201
    assert digests(discover(client, repository, image.digest)) == [digest]


def test_deleting_an_image_deletes_its_referrers_recursively_unless_one_is_locked(
    client: Oras, data_client: ContainerRegistryClient
) -> None:
    """ACR: "By deleting the root artifact, all related artifacts are also deleted" (a signature of an SBOM
    of the image too). A locked referrer refuses its subject's delete (stricter: undocumented)."""
    repository = f"graph/{unique('g')}"
    image = push_image(data_client, repository)
    client.authorize(repository)
    verdict, _ = attach(client, repository, image, VERDICT, "verdict")
    sbom, _ = attach(client, repository, image, SBOM, "sbom")
    sbom_bytes = client.client.do_request(
        f"https://{client.host}/v2/{repository}/manifests/{sbom}", "GET", headers={"Accept": MANIFEST}
    ).content
    sbom_subject = oras.oci.Subject(mediaType=MANIFEST, digest=sbom, size=len(sbom_bytes))
    signature, _ = attach(client, repository, sbom_subject, SIGNATURE, "signature")
    data_client.update_manifest_properties(repository, signature, can_write=False)
    with pytest.raises(HttpResponseError) as refused:
        data_client.delete_manifest(repository, image.digest)
    assert refused.value.status_code == 403
    assert refused.value.response is not None
    assert json.loads(refused.value.response.text())["errors"][0]["code"] == "DENIED"
    assert {m.digest for m in data_client.list_manifest_properties(repository)} == {
        image.digest,
        verdict,
        sbom,
        signature,
    }
    data_client.update_manifest_properties(repository, signature, can_write=True)
    data_client.delete_manifest(repository, image.digest)
    with pytest.raises(ResourceNotFoundError):
        data_client.get_repository_properties(repository)
