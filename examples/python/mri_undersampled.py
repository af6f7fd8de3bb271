"""4× undersampled single-coil MRI from Python: a random Cartesian mask with a fully sampled
centre, zero-filled, TV and the score-based projection sampler with the shipped brain prior,
PSNR/SSIM, one PNG.

    python examples/python/mri_undersampled.py [MODEL_DIR] [STEPS] [OUT.png]
"""
import sys

import matplotlib.pyplot as plt
import scoreinv

model, steps = (sys.argv[1:2] or ["data/models/mri-brain"])[0], int((sys.argv[2:3] or [100])[0])
out = (sys.argv[3:4] or ["out/examples/python_mri_undersampled.png"])[0]
size = scoreinv.load_model(model).sample_shape[-1]
x = scoreinv.ground_truth("phantom:shepp-logan", size=size)[0]
task = scoreinv.Task("mri", size=size, acceleration=4.0, mask_kind="random")
y = task.simulate(x, noise="none")
recs = scoreinv.reconstruct(task, y, model=model, method="zero-filled,tv,score", steps=steps, progress=True)
panels = [("truth", x)] + [(f"{m} {scoreinv.psnr(x, r.mean):.2f} dB, SSIM {scoreinv.ssim(x, r.mean):.3f}", r.mean) for m, r in recs.items()]
fig, axes = plt.subplots(1, len(panels), figsize=(3 * len(panels), 3.3))
for ax, (title, img) in zip(axes, panels):
    ax.imshow(img[0], cmap="gray", vmin=0, vmax=1), ax.set_title(title, fontsize=8), ax.axis("off")
fig.savefig(out, dpi=120, bbox_inches="tight")
print(f"wrote {out}")
