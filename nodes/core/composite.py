"""Putting results back together: resizing to the vendor's output size and pasting original
pixels back over the generated image with a soft seam."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .imagecodec import image_to_uint8, pixels_into


def resize_image(image: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """IMAGE [B,H,W,C] -> [B,height,width,C]; antialiased when shrinking."""
    if image.shape[1:3] == (height, width):
        return image
    shrinking = height < image.shape[1] or width < image.shape[2]
    out = F.interpolate(image.movedim(-1, 1).float(), size=(height, width), mode="bilinear",
                        align_corners=False, antialias=shrinking)
    return out.movedim(1, -1).clamp(0, 1).to(image.dtype)


def upscale_image(image: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """IMAGE [B,H,W,C] -> [B,height,width,C] with bicubic (antialiased should it shrink): the vendor's
    result brought to the original's scale (output_resolution = original), sharper than bilinear."""
    if image.shape[1:3] == (height, width):
        return image
    out = F.interpolate(image.movedim(-1, 1).float(), size=(height, width), mode="bicubic",
                        align_corners=False, antialias=True)
    return out.clamp_(0, 1).movedim(1, -1).to(image.dtype)


def resize_mask(mask: torch.Tensor, width: int, height: int) -> torch.Tensor:
    return resize_image(mask.unsqueeze(-1), width, height).squeeze(-1)


class BatchOutput:
    """The run's IMAGE and MASK batches, allocated once at the first result's size and filled item by
    item: a result is decoded straight into its slot (slot()) and blended there, so no per-item float
    image is kept around and nothing is copied into the batch afterwards. An item of another size is
    decoded aside and resized, because an IMAGE batch has one size; put() says so, for its report entry."""

    def __init__(self, count: int):
        self.count = count
        self.images: torch.Tensor | None = None
        self.masks: torch.Tensor | None = None

    def _allocate(self, height: int, width: int, channels: int, dtype=torch.float32, device=None) -> None:
        if self.images is None:
            self.images = torch.empty((self.count, height, width, channels), dtype=dtype, device=device)
            self.masks = torch.empty((self.count, height, width), dtype=dtype, device=device)

    def slot(self, index: int, height: int, width: int, channels: int = 3) -> torch.Tensor:
        """Where item `index`, height x width, is to be decoded: [1,H,W,C], a view of the batch when
        the size is the batch's (else a tensor of its own, resized by put())."""
        self._allocate(height, width, channels)
        if self.images.shape[1:] == (height, width, channels):
            return self.images[index:index + 1]
        return torch.empty((1, height, width, channels), dtype=self.images.dtype)

    def decoded(self, index: int, pixels, width: int, height: int) -> torch.Tensor:
        """Item `index`'s image [1,height,width,3] from its decoded pixels (imagecodec.decode_pixels):
        written straight into its batch slot when they are that size, else decoded aside and upscaled
        (output_resolution = original; put() then copies it into the batch)."""
        if pixels.shape[:2] == (height, width):
            return pixels_into(pixels, self.slot(index, height, width)[0])[None]
        return upscale_image(pixels_into(pixels, torch.empty(pixels.shape))[None], width, height)

    def mask_slot(self, index: int, height: int, width: int) -> torch.Tensor | None:
        """Where item `index`'s mask is to be written ([1,H,W], a view of the batch), or None when its
        size is not the batch's (after slot())."""
        return self.masks[index:index + 1] if self.masks is not None and self.masks.shape[1:] == (height, width) \
            else None

    def put(self, index: int, image: torch.Tensor, mask: torch.Tensor) -> str | None:
        """Store one item (nothing to copy when `image` is its slot); returns a note for its report entry
        when it had to be resized."""
        self._allocate(*image.shape[1:], dtype=image.dtype, device=image.device)
        height, width = self.images.shape[1:3]
        note = None
        if image.shape[1:3] != (height, width):
            image, mask = resize_image(image, width, height), resize_mask(mask, width, height)
            note = f"{width}x{height} (to share the batch size)"
        if image.data_ptr() != self.images[index].data_ptr():
            self.images[index] = image[0]
        if mask.data_ptr() != self.masks[index].data_ptr():
            self.masks[index] = mask[0]
        return note


def _channels_like(source: torch.Tensor, generated: torch.Tensor) -> torch.Tensor:
    """The source with the result's channel count (a view): alpha dropped, grey repeated. The runs send
    RGB already; this keeps a paste-back after a paid call from failing on an input's shape."""
    have, want = source.shape[-1], generated.shape[-1]
    if have == want:
        return source
    return source[..., :want] if have > want else source[..., :1].expand(*source.shape[:-1], want)


def paste_original(generated: torch.Tensor, original: torch.Tensor, placement, mask: torch.Tensor) -> torch.Tensor:
    """Blend `original` (any size: resized to the placement) into `generated` [1,Ho,Wo,3] in place,
    inside the placement box, through `mask` [1,Ho,Wo] (1 = keep generated). Only the box is touched."""
    p = placement
    box = (slice(None), slice(p.y, p.y + p.height), slice(p.x, p.x + p.width))
    source = resize_image(_channels_like(original, generated).to(generated.device, generated.dtype), p.width, p.height)
    target = generated[box]
    torch.lerp(source, target, mask[box][..., None].to(generated.dtype), out=target)  # in place: no temporary
    return generated


def paste_back(generated: torch.Tensor, source: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """generated [1,Ho,Wo,3]; source canvas [1,H,W,3] and mask [1,H,W] (1 = generate) in canvas space.

    Returns the composite (source pixels where the mask is 0, blended through its soft edge)
    and the mask at the output size. Only the box where the mask is below 1 is blended, in
    place in `generated` (a tensor the caller owns), so the padded area costs nothing.
    """
    height, width = generated.shape[1:3]
    m = resize_mask(mask.to(generated.dtype), width, height)
    keep = (m < 1).any(dim=0)
    rows, cols = keep.any(dim=1).nonzero(), keep.any(dim=0).nonzero()
    if len(rows) == 0:
        return generated, m
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    source = _channels_like(source, generated)
    if source.shape[1:3] != (height, width):
        source = resize_image(source.to(generated.dtype), width, height)
    box = (slice(None), slice(y0, y1), slice(x0, x1))
    target = generated[box]
    torch.lerp(source[box].to(generated.dtype), target, m[box][..., None], out=target)
    return generated, m


def rotated_source(image: torch.Tensor, angle: float, width: int, height: int, seam: int
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """The image rotated counter-clockwise (bounding box, as Pillow's rotate(expand=True)) and resized
    to width x height, with the mask of what is *not* image (1 = generate), softened `seam` px into
    the image so a paste-back blends instead of cutting."""
    import numpy as np
    from PIL import Image

    rgb = Image.fromarray(image_to_uint8(image)[0])
    alpha = Image.new("L", rgb.size, 255)
    rgb = rgb.rotate(angle, resample=Image.BICUBIC, expand=True).resize((width, height), Image.BICUBIC)
    alpha = alpha.rotate(angle, resample=Image.BILINEAR, expand=True).resize((width, height), Image.BILINEAR)
    source = torch.from_numpy(np.array(rgb)).to(torch.float32).div_(255)[None]
    mask = 1 - torch.from_numpy(np.array(alpha)).to(torch.float32).div_(255)[None, None]
    if seam > 0:  # grow the generate area into the image, then soften the edge
        k = 2 * seam + 1
        mask = F.avg_pool2d(F.max_pool2d(mask, k, 1, seam), k, 1, seam, count_include_pad=False)
    return source.to(image.device), mask[0].clamp(0, 1).to(image.device)
