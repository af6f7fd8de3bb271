#!/usr/bin/env python3
"""Random multi-scale square crops of photographs, written as PNG files for
`scoreinv reconstruct colorize --ground-truth DIR` (validation crops of photos a colour prior never
saw). Same recipe as the training crops (src/train/data/photos.rs `photo_crops`): each photo
shrunk so that its short side is at most 4·SIZE, a square of side U(0.25, 1)·short side at a
random place, resized to SIZE×SIZE; the photos are taken in a random order, one crop each in
turn (N ≤ P: N different photos), drawn by numpy's PCG64 from SEED (not the Rust stream).

    .venv/bin/python scripts/data/photo_crops.py LIST N SEED OUT_DIR [SIZE]
"""
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def photos(list_file):
    base = Path(list_file).resolve().parent
    out = []
    for line in open(list_file):
        line = line.strip()
        if line and not line.startswith("#"):
            p = Path(line)
            out.append(p if p.is_absolute() else base / p)
    return out


def main(list_file, n, seed, out_dir, size=64):
    files = photos(list_file)
    if not files:
        sys.exit(f"{list_file}: no photos listed")
    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    order = rng.permutation(len(files))
    for i in range(n):
        f = files[order[i % len(files)]]
        img = Image.open(f).convert("RGB")
        w, h = img.size
        scale = min(1.0, 4 * size / min(w, h))
        if scale < 1.0:
            img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR)
        w, h = img.size
        short = min(w, h)
        side = int(np.clip(round(rng.uniform(0.25, 1.0) * short), 2, short))
        x0 = int(rng.integers(0, w - side + 1))
        y0 = int(rng.integers(0, h - side + 1))
        crop = img.crop((x0, y0, x0 + side, y0 + side)).resize((size, size), Image.BILINEAR)
        crop.save(out / f"crop_{i:02d}_{f.stem}.png")
    print(f"wrote {n} crops of {len(files)} photos to {out}")


if __name__ == "__main__":
    if len(sys.argv) not in (5, 6):
        sys.exit(__doc__)
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], *map(int, sys.argv[5:]))
