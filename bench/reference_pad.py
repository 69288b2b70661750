"""A straightforward re-implementation of ComfyUI's ImagePadForOutpaint (nodes.py), per-pixel loop
and all, as described in comfyui-notes §3. Used as the parity reference in tests and bench."""

import torch


def image_pad_for_outpaint(image, left, top, right, bottom, feathering):
    b, h, w, c = image.shape
    new_image = torch.ones((b, h + top + bottom, w + left + right, c), dtype=torch.float32) * 0.5
    new_image[:, top:top + h, left:left + w, :] = image
    mask = torch.ones((h + top + bottom, w + left + right), dtype=torch.float32)
    t = torch.zeros((h, w), dtype=torch.float32)
    if feathering > 0 and feathering * 2 < h and feathering * 2 < w:
        for i in range(h):
            for j in range(w):
                dt = i if top != 0 else h
                db = h - i if bottom != 0 else h
                dl = j if left != 0 else w
                dr = w - j if right != 0 else w
                d = min(dt, db, dl, dr)
                if d >= feathering:
                    continue
                v = (feathering - d) / feathering
                t[i, j] = v * v
    mask[top:top + h, left:left + w] = t
    return new_image, mask.unsqueeze(0)
