#!/usr/bin/env python3
"""Labelled figure of a deblurring study: rows = cases, columns = truth and each method's
reconstruction with its PSNR/SSIM (from metrics.json). Truth is read from the Fashion-MNIST test
set of Debian's dataset-fashion-mnist; reconstructions from the study's CASE_METHOD.npy files.

Usage: deblur_figure.py STUDY_DIR[,STUDY_DIR…] METRICS_JSON[,METRICS_JSON…] OUT.png [N_CASES]
"""
import gzip, json, sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

dirs = [Path(d) for d in sys.argv[1].split(",")]
records = [r for f in sys.argv[2].split(",") for r in json.load(open(f))["records"]]
out = Path(sys.argv[3])
n_cases = int(sys.argv[4]) if len(sys.argv) > 4 else 4
methods = ["wiener", "tv", "score", "dps"]

root = Path("/usr/share/datasets/fashion-mnist")
raw = gzip.open(root / "t10k-images-idx3-ubyte.gz").read()
truth = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28) / 255.0

rec = {(r["case"], r["method"]): r for r in records}
cases = sorted({r["case"] for r in records}, key=lambda c: int(c.rsplit("_", 1)[1]))[:n_cases]
scale, pad, top = 4, 6, 40
cell = 28 * scale
w = (1 + len(methods)) * (cell + pad) + pad
h = top + len(cases) * (cell + pad + 14) + pad
fig = Image.new("L", (w, h), 255)
draw = ImageDraw.Draw(fig)
for j, name in enumerate(["truth"] + methods):
    draw.text((pad + j * (cell + pad) + 4, 8), name, fill=0)
draw.text((pad + cell + pad + 4, 22), "under each: PSNR dB / SSIM against the truth", fill=0)


def paste(img, i, j):
    a = (np.clip(img, 0, 1) * 255).astype(np.uint8)
    im = Image.fromarray(a).resize((cell, cell), Image.NEAREST)
    fig.paste(im, (pad + j * (cell + pad), top + i * (cell + pad + 14)))


for i, case in enumerate(cases):
    k = int(case.rsplit("_", 1)[1])
    paste(truth[k], i, 0)
    for j, m in enumerate(methods, start=1):
        f = next((d / f"{case}_{m}.npy" for d in dirs if (d / f"{case}_{m}.npy").exists()), None)
        if f is None:
            continue
        x = np.load(f).squeeze()
        paste(x, i, j)
        r = rec.get((case, m))
        if r:
            y = top + i * (cell + pad + 14) + cell + 1
            draw.text((pad + j * (cell + pad), y), f"{r['psnr_db']:.2f} / {r['ssim']:.3f}", fill=0)
fig.save(out)
print(f"wrote {out}")
