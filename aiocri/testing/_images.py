"""The fake runtime's images: the local store, the registry it pulls from, the RPCs.

Answers follow containerd 1.7's CRI image service (and 1.6's where ``compat`` says
so): ListImages ignores its filter, an Image carries no ``spec``, an empty or short
reference is an id prefix (ambiguous when several images share it), only 1.7 reports
the sandbox image as pinned, ImageFsInfo has no container filesystems.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import grpc

from aiocri._proto.runtime.v1 import api_pb2 as pb
from aiocri.testing._model import (
    IMAGE_FS,
    Image,
    StatusError,
    frame,
    normalize_ref,
    not_found,
)
from aiocri.testing._shared import Response, ServicerBase, SharedState, chunks
from aiocri.versions import CRIVersion

__all__ = ["ImageOps", "ImageRPCs"]


def _u64(value: int) -> pb.UInt64Value:
    return pb.UInt64Value(value=value)


class ImageOps(SharedState):
    """Finding, pulling and removing local images."""

    def find_image(self, ref: str) -> Image | None:
        """A local image by id, short id, tag or digest; None when absent."""
        if not ref:
            return None
        by_id = self.images.get(ref) or self.images.get(f"sha256:{ref}")
        if by_id is not None:
            return by_id
        full = normalize_ref(ref)
        for image in self.images.values():
            if full in image.repo_tags or full in image.repo_digests:
                return image
        hexpart = ref.removeprefix("sha256:")
        if len(hexpart) >= 4 and all(ch in "0123456789abcdef" for ch in hexpart):
            hits = [i for i in self.images.values() if i.id[7:].startswith(hexpart)]
            if len(hits) == 1:
                return hits[0]
        return None

    def resolve_image(self, ref: str) -> Image | None:
        """A local image as containerd's ImageStatus and RemoveImage find it: by name,
        else by id or any id prefix (the empty reference included: the only image when
        there is one). A prefix shared by several images raises UNKNOWN, containerd's
        "ambiguous digest string"; None when nothing matches."""
        if ref:
            found = self.find_image(ref)
            if found is not None:
                return found
        hexpart = ref.removeprefix("sha256:")
        if not all(ch in "0123456789abcdef" for ch in hexpart):
            return None
        hits = [i for i in self.images.values() if i.id[7:].startswith(hexpart)]
        if len(hits) > 1:
            raise StatusError(
                grpc.StatusCode.UNKNOWN,
                f'can not resolve "{ref}" locally: ambiguous digest string',
            )
        return hits[0] if hits else None

    def import_image(self, image: Image | str) -> Image:
        """Add a local image as ``ctr images import`` does: with its names, and no
        repo digest unless ``image`` has one (a pulled image has one, an imported one
        not); the registry does not learn of it. Content already local gains the
        names. Returns the local image."""
        if isinstance(image, str):
            image = Image.from_ref(image)
            image.repo_digests = []
        return self._keep(image)

    def _add_to_registry(self, item: str | Image) -> Image:
        image = item if isinstance(item, Image) else Image.from_ref(item)
        for ref in (*image.repo_tags, *image.repo_digests):
            self.registry[ref] = image
        return image

    def _keep(self, image: Image) -> Image:
        """Store ``image`` locally; content already there gains its names."""
        local = self.images.get(image.id)
        if local is None:
            local = self.images[image.id] = replace(
                image, repo_tags=list(image.repo_tags), repo_digests=list(image.repo_digests)
            )
        else:
            local.merge(image)
        self._changed()
        return local

    def pull_image(self, ref: str) -> Image:
        if not ref:  # containerd's words and code
            raise StatusError(
                grpc.StatusCode.UNKNOWN,
                'failed to parse image reference "": invalid reference format',
            )
        full = normalize_ref(ref)
        content = self.registry.get(full)
        if content is None:
            local = self.find_image(ref)
            if local is not None:
                return local
            if self.pull_policy != "any" or not ref.strip():
                # What containerd says when the registry has no such image.
                raise StatusError(
                    grpc.StatusCode.NOT_FOUND,
                    f'failed to pull and unpack image "{full}": failed to resolve '
                    f'reference "{full}": {full}: not found',
                )
            content = self._add_to_registry(ref)
        return self._keep(content.named(full))

    def tag_image(self, source: str, ref: str) -> Image:
        """Give a local image one more name, as ``ctr images tag`` does."""
        image = self.find_image(source)
        if image is None:
            raise not_found("image", source)
        return self._keep(image.named(ref))

    def remove_image(self, ref: str) -> bool:
        """Removes a local image, pinned or not; absent is fine (containerd answers OK).
        The reference resolves as in :meth:`resolve_image`: an empty one removes the
        only image there is, as containerd does."""
        image = self.resolve_image(ref)
        if image is None:
            return False
        del self.images[image.id]
        self._changed()
        return True


class ImageRPCs(ServicerBase):
    """ImageService."""

    def _image_proto(self, image: Image) -> pb.Image:
        """``image`` as containerd answers it: no ``spec``; pinned on 1.7 only (1.6
        has no pinned images)."""
        proto = image.to_proto()
        proto.ClearField("spec")
        if self.state.compat == "1.6":
            proto.pinned = False
        return proto

    def _image_items(self) -> list[bytes]:
        # The filter is ignored on purpose: containerd 1.6 and 1.7 list every image
        # whatever ListImagesRequest.filter says (measured; crictl's `images NAME`
        # sends it and shows what comes back, so it lists everything there too).
        images = self.state.images.values()
        return [frame(self._image_proto(i).SerializeToString()) for i in images]

    def list_images(self, request: pb.ListImagesRequest, version: CRIVersion) -> Response:
        return b"".join(self._image_items())

    async def stream_images(
        self, request: pb.StreamImagesRequest, version: CRIVersion
    ) -> AsyncIterator[Response]:
        for chunk in chunks(self._image_items(), self.stream_chunk):
            yield chunk

    def image_status(
        self, request: pb.ImageStatusRequest, version: CRIVersion
    ) -> pb.ImageStatusResponse:
        image = self.state.resolve_image(request.image.image)
        if image is None:  # absent is an empty answer, not an error
            return pb.ImageStatusResponse()
        response = pb.ImageStatusResponse(image=self._image_proto(image))
        if request.verbose:
            info = {
                "imageSpec": {"architecture": "amd64", "os": "linux"},
                "chainID": f"sha256:{image.id[7:][::-1]}",
            }
            response.info["info"] = json.dumps(info)
        return response

    async def pull_image(
        self, request: pb.PullImageRequest, version: CRIVersion
    ) -> pb.PullImageResponse:
        ref = request.image.image
        state = self.state
        if state.pull_seconds > 0 and ref and state.registry.get(normalize_ref(ref)) is not None:
            # grpc cancels this handler at the call's deadline: nothing is stored then
            await asyncio.sleep(state.pull_seconds)
        image = state.pull_image(ref)
        return pb.PullImageResponse(image_ref=image.id)

    def remove_image(
        self, request: pb.RemoveImageRequest, version: CRIVersion
    ) -> pb.RemoveImageResponse:
        self.state.remove_image(request.image.image)
        return pb.RemoveImageResponse()

    def image_fs_info(
        self, request: pb.ImageFsInfoRequest, version: CRIVersion
    ) -> pb.ImageFsInfoResponse:
        now = time.time_ns()
        used = sum(i.size for i in self.state.images.values())
        images = pb.FilesystemUsage(
            timestamp=now,
            fs_id=pb.FilesystemIdentifier(mountpoint=IMAGE_FS),
            used_bytes=_u64(used),
            inodes_used=_u64(len(self.state.images) * 1200),
        )
        # containerd 1.6/1.7 report the image filesystem only: no container_filesystems
        return pb.ImageFsInfoResponse(image_filesystems=[images])
