"""Sparse-view CT from Python: 23 of 180 views of a held-out ellipse phantom, FBP, TV and the
score-based projection sampler (Song et al. 2022) with the shipped prior, PSNR/SSIM, one PNG.

    python examples/python/ct_sparse_view.py [MODEL_DIR] [STEPS] [OUT.png]
"""
import sys

import matplotlib.pyplot as plt
import scoreinv

model, steps = (sys.argv[1:2] or ["data/models/ct-ellipses"])[0], int((sys.argv[2:3] or [100])[0])
out = (sys.argv[3:4] or ["out/examples/python_ct_sparse_view.png"])[0]
x = scoreinv.ground_truth("phantom:ellipses:1000", size=64)[0]
task = scoreinv.Task("ct", size=64, views=23, angles=180)
y = task.simulate(x, noise="gaussian:0.005")
recs = scoreinv.reconstruct(task, y, model=model, method="fbp,tv,score", steps=steps, progress=True)
panels = [("truth", x)] + [(f"{m} {scoreinv.psnr(x, r.mean):.2f} dB, SSIM {scoreinv.ssim(x, r.mean):.3f}", r.mean) for m, r in recs.items()]
fig, axes = plt.subplots(1, len(panels), figsize=(3 * len(panels), 3.3))
for ax, (title, img) in zip(axes, panels):
    ax.imshow(img[0], cmap="gray", vmin=0, vmax=1), ax.set_title(title, fontsize=8), ax.axis("off")
fig.savefig(out, dpi=120, bbox_inches="tight")
print(f"wrote {out}")
