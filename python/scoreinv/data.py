"""Ground-truth images as the command line reads them (``--ground-truth SPEC``)."""

from __future__ import annotations

import torch

from . import _scoreinv

__all__ = ["ground_truth"]


def ground_truth(spec: str, size: int | None = None, window=(-1000.0, 1500.0)) -> torch.Tensor:
    """The images of ``spec`` as a float32 batch ``[N, C, H, W]`` in ``[0, 1]``, exactly as
    ``scoreinv reconstruct --ground-truth SPEC --size SIZE --window LO,HI`` reads them: a file
    (png, tif, npy, nii[.gz], dcm; ``#z=K`` a slice), a folder, ``phantom:shepp-logan``,
    ``phantom:ellipses:A..B``, ``fashion-mnist:A..B``, ``invesalius:z=A..B``, …"""
    cases = _scoreinv.ground_truth(str(spec), size, (float(window[0]), float(window[1])))
    shapes = {tuple(t.shape) for _, t in cases}
    if len(shapes) > 1:
        raise ValueError(
            f"ground_truth {spec}: images of several shapes {sorted(shapes)}; give size=N"
        )
    return torch.stack([t for _, t in cases])
