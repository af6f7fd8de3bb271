"""Sparse-view CT from Python: 23 of 180 views of a held-out ellipse phantom, FBP, TV and the
score-based projection sampler (Song et al. 2022) with the shipped prior, PSNR/SSIM, and the
command line's labelled figure (truth | each method | |error| × 4).

    python examples/python/ct_sparse_view.py [MODEL_DIR] [STEPS] [OUT.png]
"""
import sys

import scoreinv

model, steps = (sys.argv[1:2] or ["data/models/ct-ellipses"])[0], int((sys.argv[2:3] or [100])[0])
out = (sys.argv[3:4] or ["out/examples/python_ct_sparse_view.png"])[0]
x = scoreinv.ground_truth("phantom:ellipses:1000", size=64)[0]
task = scoreinv.Task("ct", size=64, views=23, angles=180)
y = task.simulate(x, noise="gaussian:0.005")
recs = scoreinv.reconstruct(task, y, model=model, method="fbp,tv,score", steps=steps, progress=True)
for m, r in recs.items():
    print(f"{m:<12} PSNR {scoreinv.psnr(x, r.mean):6.2f} dB  SSIM {scoreinv.ssim(x, r.mean):.4f}")
scoreinv.save_figure(out, x, {m: r.mean for m, r in recs.items()})
print(f"wrote {out}")
