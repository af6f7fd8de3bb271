#!/usr/bin/env python3
"""Axial training and held-out slices of two real torso CT volumes, for a body-CT prior.

Usage: ct_body_slices.py TOTALSEG_REFERENCE_FILES OUT_DIR

The volumes are the example CTs of the TotalSegmentator source distribution on PyPI
(`totalsegmentator==2.18.0`, Apache-2.0; `scripts/fetch_data` downloads and unpacks it):

* chest (patient A): `aorta_report/example_ct.nii.gz`, 233 x 167 x 191 voxels of 1.5 mm, upper
  abdomen to neck (lungs, heart, mediastinum, shoulders);
* abdomen (patient B): `example_ct.nii.gz`, 122 x 101 x 112 voxels of 3 mm, pelvis to the lung
  bases.

Each axial slice (anterior at the top, as CT is displayed) is taken in Hounsfield units through
the default HU window of `scoreinv` ([-1000, 1500] -> [0, 1], clipped, as `ct_slices::HuWindow`),
set at its physical size in the middle of a square field of view of air (value 0) of `FOV_MM`
millimetres, and resampled (antialiased, linear) to `SIDE` x `SIDE`: a volume cropped tightly
to the body becomes a slice as a scanner reconstructs it, with air around the body. Training
slices are written at three fields of view (a scale augmentation: scanners reconstruct body CT at
350-500 mm); slices that are mostly air are dropped.

A block of axial slices of each volume is held out, with a gap on either side so that no
training slice is a neighbour of a held-out one (1.5 mm / 3 mm apart):

* `chest_train.npy`, `abdomen_train.npy`: `[N, SIDE, SIDE]` float32 in [0, 1] (`--data` sources);
* `chest_heldout.npy`, `abdomen_heldout.npy`: `[16, SIDE, SIDE]` float32 in [0, 1] at the
  middle field of view (`--ground-truth FILE.npy#z=K` cases; a stack of 16 is a volume);
* `manifest.json`: what was held out and how many slices each file has.
"""
import json
import os
import sys

import nibabel as nib
import numpy as np
from skimage.transform import resize

SIDE = 256
HU_LO, HU_HI = -1000.0, 1500.0
TRAIN_FOVS_MM = (360.0, 430.0, 500.0)
HELDOUT_FOV_MM = 430.0
# (file, held-out axial block [a, b), gap on either side excluded from training)
VOLUMES = {
    "chest": ("aorta_report/example_ct.nii.gz", (70, 86), 6),
    "abdomen": ("example_ct.nii.gz", (40, 56), 3),
}
# A slice is kept for training when at least this fraction of its native pixels is above
# -500 HU (tissue, not air).
MIN_BODY_FRACTION = 0.05


def window(hu):
    return np.clip((hu - HU_LO) / (HU_HI - HU_LO), 0.0, 1.0).astype(np.float32)


def axial_slices(path):
    """Slices `[K, rows, cols]` in HU (anterior at the top) and the in-plane spacing (mm)."""
    img = nib.as_closest_canonical(nib.load(path))  # RAS+: axis 0 to the right, 1 anterior
    vol = np.asarray(img.dataobj, dtype=np.float32)
    sx, sy, _ = img.header.get_zooms()
    if abs(sx - sy) > 1e-3:
        raise SystemExit(f"{path}: anisotropic in-plane voxels {sx} x {sy}")
    # rot90 of an (x, y) plane puts y (anterior) at the top row.
    return np.stack([np.rot90(vol[:, :, k]) for k in range(vol.shape[2])]), float(sx)


def in_fov(sl, spacing, fov_mm):
    """The windowed slice at its physical size, centred in a `fov_mm` square of air."""
    n = max(int(round(fov_mm / spacing)), *sl.shape)
    out = np.zeros((n, n), np.float32)
    r0, c0 = (n - sl.shape[0]) // 2, (n - sl.shape[1]) // 2
    out[r0 : r0 + sl.shape[0], c0 : c0 + sl.shape[1]] = window(sl)
    return resize(out, (SIDE, SIDE), order=1, anti_aliasing=True).astype(np.float32)


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    manifest = {"side": SIDE, "hu_window": [HU_LO, HU_HI], "train_fov_mm": TRAIN_FOVS_MM,
                "heldout_fov_mm": HELDOUT_FOV_MM, "volumes": {}}
    for name, (rel, (a, b), gap) in VOLUMES.items():
        slices, spacing = axial_slices(os.path.join(src, rel))
        train = [
            in_fov(s, spacing, fov)
            for k, s in enumerate(slices)
            if not (a - gap <= k < b + gap) and (s > -500).mean() >= MIN_BODY_FRACTION
            for fov in TRAIN_FOVS_MM
        ]
        held = [in_fov(slices[k], spacing, HELDOUT_FOV_MM) for k in range(a, b)]
        for suffix, arr in (("train", train), ("heldout", held)):
            path = os.path.join(out, f"{name}_{suffix}.npy")
            tmp = path + ".tmp.npy"
            np.save(tmp, np.stack(arr))
            os.replace(tmp, path)
        manifest["volumes"][name] = {
            "file": rel, "slices": len(slices), "spacing_mm": spacing,
            "heldout_axial": [a, b], "gap": gap, "train_samples": len(train),
        }
        print(f"{name}: {len(train)} training samples, "
              f"held-out axial {a}..{b - 1} of {len(slices)}")
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()
