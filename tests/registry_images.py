"""Images made up for registry tests, pushed through the registry API with chosen ages.

Each image is a tiny config blob (its `created` time whatever the test says, so that
images 1 to 200 days old need no waiting) and one tiny layer (a gzipped tar with one
file, the same for every image: pushed once per repository). They are valid images,
which docker could pull; their digests differ by tag (a label names it) and by age.

    client = registry.Registry("127.0.0.1:5000", timeout=10, plain_http=True)
    old = push_test_image(client, "gdi/x", "image_content_digest_1", days_ago(90))
    share_manifest(client, "gdi/x", old.tag, "also-old")     # two tags, one manifest
    index = push_test_index(client, "gdi/x", "multi", days_ago(3))
    push_lock_marker(client, "gdi/x", old.tag, LockMarker(...).document())  # <tag>-lock
"""

from __future__ import annotations

import datetime
import functools
import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import registry

DOCKER_CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_TYPE = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
# What each manifest type's config and layers are.
_PARTS = {
    registry.DOCKER_MANIFEST: (DOCKER_CONFIG_TYPE, DOCKER_LAYER_TYPE),
    registry.OCI_MANIFEST: (OCI_CONFIG_TYPE, OCI_LAYER_TYPE),
}
# What an index's entries are, by the index's type.
_CHILD_TYPE = {
    registry.OCI_INDEX: registry.OCI_MANIFEST,
    registry.DOCKER_MANIFEST_LIST: registry.DOCKER_MANIFEST,
}
TAG_LABEL = "gdi-test.tag"


class PushedImage(NamedTuple):
    repository: str
    tag: str | None  # None: pushed by digest only (an index's entry)
    digest: str  # the manifest's
    media_type: str  # the manifest's
    config_digest: str
    layer_digest: str
    created: str  # as in the config


class PushedIndex(NamedTuple):
    repository: str
    tag: str
    digest: str
    media_type: str
    images: tuple[PushedImage, ...]  # its entries, one per platform


def days_ago(days: float) -> datetime.datetime:
    """Now less `days` days, in UTC."""
    return datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=days)


def docker_time(moment: datetime.datetime) -> str:
    """A time as docker writes `created` (RFC 3339 in UTC, 'Z', nanoseconds as Go prints
    them: trailing zeros dropped)."""
    utc = moment.astimezone(datetime.timezone.utc)
    fraction = f"{utc.microsecond:06d}000".rstrip("0")
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


@functools.cache
def tiny_layer() -> tuple[bytes, str]:
    """The layer every test image has: its gzipped bytes and its diff id (the sha256 of
    the tar), both the same on every call (no times in them)."""
    content = b"a layer of a test image of get_docker_image\n"
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        member = tarfile.TarInfo("gdi-test.txt")
        member.size, member.mtime, member.mode = len(content), 0, 0o644
        tar.addfile(member, io.BytesIO(content))
    data = tar_bytes.getvalue()
    return gzip.compress(data, mtime=0), "sha256:" + hashlib.sha256(data).hexdigest()


def push_test_image(
    client: registry.Registry,
    repository: str,
    tag: str | None,
    created: datetime.datetime | str,
    *,
    media_type: str = registry.DOCKER_MANIFEST,
    architecture: str = "amd64",
    labels: Mapping[str, str] | None = None,
) -> PushedImage:
    """Pushes an image whose config says it was `created` then (a datetime, written as
    docker writes it, or a string written as it is) under `tag` (None: by digest only).

    media_type: DOCKER_MANIFEST or OCI_MANIFEST (with the config and layer types to
    match). The config has the label TAG_LABEL=<tag> and `labels`, so that images
    differ by tag even when created at the same time."""
    config_type, layer_type = _PARTS[media_type]
    layer, diff_id = tiny_layer()
    layer_digest = client.push_blob(repository, layer)
    created_text = created if isinstance(created, str) else docker_time(created)
    config = {
        "architecture": architecture,
        "os": "linux",
        "created": created_text,
        "config": {"Labels": {TAG_LABEL: tag or "", **(labels or {})}},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": created_text, "created_by": "tests/registry_images.py"}],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_digest = client.push_blob(repository, config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": config_type, "size": len(config_bytes), "digest": config_digest},
        "layers": [{"mediaType": layer_type, "size": len(layer), "digest": layer_digest}],
    }
    body = json.dumps(manifest, indent=3).encode()  # docker's own indent
    reference = tag or registry.digest_of(body)
    digest = client.push_manifest(repository, reference, media_type, body)
    return PushedImage(
        repository, tag, digest, media_type, config_digest, layer_digest, created_text
    )


def push_test_index(
    client: registry.Registry,
    repository: str,
    tag: str,
    created: datetime.datetime | str,
    *,
    media_type: str = registry.OCI_INDEX,
    architectures: Sequence[str] = ("amd64", "arm64"),
) -> PushedIndex:
    """Pushes one image per architecture, by digest only, created as push_test_image's,
    then an index of them (OCI_INDEX, or DOCKER_MANIFEST_LIST) under `tag`."""
    images = tuple(
        push_test_image(
            client,
            repository,
            None,
            created,
            media_type=_CHILD_TYPE[media_type],
            architecture=architecture,
            labels={"gdi-test.index": tag},
        )
        for architecture in architectures
    )
    entries = []
    for image, architecture in zip(images, architectures, strict=True):
        size = len(client.manifest(repository, image.digest).body)
        platform = {"architecture": architecture, "os": "linux"}
        entries.append(
            {
                "mediaType": image.media_type,
                "size": size,
                "digest": image.digest,
                "platform": platform,
            }
        )
    body = json.dumps({"schemaVersion": 2, "mediaType": media_type, "manifests": entries}).encode()
    digest = client.push_manifest(repository, tag, media_type, body)
    return PushedIndex(repository, tag, digest, media_type, images)


def push_lock_marker(
    client: registry.Registry, repository: str, image_tag: str, document: Mapping[str, object]
) -> str:
    """Pushes a build lock marker (get_docker_image.LockMarker(...).document(), or any
    document) under `image_tag`-lock, as the tool writes one: its empty config blob first,
    then the manifest, JSON with sorted keys. Returns the manifest's digest."""
    client.push_blob(repository, b"{}")
    body = json.dumps(document, sort_keys=True).encode()
    return client.push_manifest(repository, image_tag + "-lock", registry.OCI_MANIFEST, body)


def share_manifest(client: registry.Registry, repository: str, tag: str, other_tag: str) -> str:
    """Tags the manifest of `tag` as `other_tag` too (the same bytes, so the same digest:
    deleting it deletes both tags); returns the digest."""
    manifest = client.manifest(repository, tag)
    return client.push_manifest(repository, other_tag, manifest.media_type, manifest.body)
