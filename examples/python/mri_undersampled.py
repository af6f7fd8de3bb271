"""4× undersampled single-coil MRI from Python: a random Cartesian mask with a fully sampled
centre, zero-filled, TV and the score-based projection sampler with the shipped brain prior,
PSNR/SSIM, and the command line's labelled figure (truth | each method | |error| × 4).

    python examples/python/mri_undersampled.py [MODEL_DIR] [STEPS] [OUT.png]
"""
import sys

import scoreinv

model, steps = (sys.argv[1:2] or ["data/models/mri-brain"])[0], int((sys.argv[2:3] or [100])[0])
out = (sys.argv[3:4] or ["out/examples/python_mri_undersampled.png"])[0]
size = scoreinv.load_model(model).sample_shape[-1]
x = scoreinv.ground_truth("phantom:shepp-logan", size=size)[0]
task = scoreinv.Task("mri", size=size, acceleration=4.0, mask_kind="random")
y = task.simulate(x, noise="none")
recs = scoreinv.reconstruct(task, y, model=model, method="zero-filled,tv,score", steps=steps,
                            progress=True)
for m, r in recs.items():
    print(f"{m:<12} PSNR {scoreinv.psnr(x, r.mean):6.2f} dB  SSIM {scoreinv.ssim(x, r.mean):.4f}")
scoreinv.save_figure(out, x, {m: r.mean for m, r in recs.items()})
print(f"wrote {out}")
