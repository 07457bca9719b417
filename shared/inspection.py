"""Reading an image for verification: its manifest, config and (for the root user check) /etc/passwd; an
index image by image. Every read is bounded; what cannot be read is a failed check saying why."""

from __future__ import annotations

from dataclasses import dataclass

from . import checks, oci, rootfs
from .checks import CheckResult
from .errors import AccessDenied, InvalidInput, NotFound
from .policy import Rule
from .registry import MAX_MANIFEST_BYTES, Manifest, ReadBudget, RegistryClient

MAX_INDEX_IMAGES = 16  # an index listing more images is failed, not read
MAX_LAYER_READ_BYTES = 512 * 1024 * 1024  # layers read to find /etc/passwd (compressed bytes)
QUARANTINED = "quarantined (readEnabled=false): it cannot be pulled"


@dataclass(frozen=True)
class Inspection:
    """What reading an image found: its checks, an index's images (digest → passed | failed) and the
    image the smoke run runs (None: an index with no image for the runner's platform)."""

    results: list[CheckResult]
    images: dict[str, str]
    run_digest: str | None
    subject: tuple[str, int]  # the manifest read: (media type, size), what a referrer names


def inspect(client: RegistryClient, rule: Rule, repository: str, manifest: Manifest) -> Inspection:
    """The manifest's checks; an index is as good as its worst image, each read and checked."""
    subject = (manifest.media_type, manifest.size)
    try:
        results = checks.check_manifest(rule, manifest.media_type, manifest.document)
    except oci.Malformed as exc:
        return Inspection([checks.failed("image", exc.message)], {}, manifest.digest, subject)
    if manifest.media_type not in oci.INDEX_TYPES:
        results += _image(client, rule, repository, manifest, in_index=False)
        return Inspection(results, {}, manifest.digest, subject)
    children = checks.index_children(manifest.document)
    if not children or len(children) > MAX_INDEX_IMAGES:
        why = f"the index lists {len(children)} images: verification reads 1 to {MAX_INDEX_IMAGES}"
        return Inspection([*results, checks.failed("index", why)], {}, None, subject)
    per_image: list[tuple[str, list[CheckResult]]] = []
    images: dict[str, str] = {}
    for child in children:
        found = _index_image(client, rule, repository, child)
        per_image.append((f"{checks.platform_of(child)} {child.digest[:19]}", found))
        images[child.digest] = checks.outcome(found)
    runner = checks.runner_child(children)
    return Inspection(
        results + checks.merge_images(per_image), images, runner.digest if runner else None, subject
    )


def quarantined(client: RegistryClient, repository: str, digest: str) -> bool:
    """A read refused while metadata reads go through: the image has readEnabled=false, which no
    client can pull (a refusal of anything else is the app's access, and retried)."""
    attributes = (client.manifest_properties(repository, digest) or {}).get("changeableAttributes")
    return isinstance(attributes, dict) and attributes.get("readEnabled") is False


def _index_image(
    client: RegistryClient, rule: Rule, repository: str, child: oci.Descriptor
) -> list[CheckResult]:
    if child.media_type in oci.INDEX_TYPES:
        return [checks.failed("image", "an index inside the index: not verified")]
    if child.media_type not in rule.media_types:
        return [checks.failed("image", f"media type '{child.media_type}' is not allowed")]
    if child.size > MAX_MANIFEST_BYTES:
        return [checks.failed("image", f"the manifest is over {MAX_MANIFEST_BYTES} bytes")]
    try:
        image = client.get_manifest(repository, child.digest)
    except NotFound:
        return [checks.failed("image", "not in the repository")]
    except InvalidInput as exc:
        return [checks.failed("image", exc.message)]
    except AccessDenied:
        if not quarantined(client, repository, child.digest):
            raise
        return [checks.failed("image", QUARANTINED)]
    return _image(client, rule, repository, image, in_index=True)


def _image(
    client: RegistryClient, rule: Rule, repository: str, manifest: Manifest, *, in_index: bool
) -> list[CheckResult]:
    """An image manifest's own checks and its config's; a malformed one fails with why."""
    try:
        found = checks.check_image_manifest(manifest.document)
        if found:
            return found
        descriptor = oci.image_manifest(manifest.document).config
        if descriptor.size > rule.max_config_bytes:
            return checks.check_config(rule, oci.ImageConfig(), descriptor.size)
        config = oci.image_config(client.get_json_blob(repository, descriptor))
        users: dict[str, int] | str | None = None
        if rule.forbid_root_user and checks.user_to_resolve(config) is not None:
            users = _passwd(client, repository, oci.image_manifest(manifest.document).layers)
        return checks.check_config(rule, config, descriptor.size, users, in_index=in_index)
    except oci.Malformed as exc:
        return [checks.failed("image", exc.message)]


def _passwd(client: RegistryClient, repository: str, layers: list[oci.Descriptor]) -> dict[str, int] | str:
    """The image's /etc/passwd users, or why they could not be read (bounded: MAX_LAYER_READ_BYTES)."""
    budget = ReadBudget(MAX_LAYER_READ_BYTES)
    try:
        return rootfs.passwd_users(layers, lambda layer: client.blob_chunks(repository, layer, budget))
    except (InvalidInput, NotFound) as exc:
        return exc.message
