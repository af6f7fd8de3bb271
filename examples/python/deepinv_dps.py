"""deepinv's DPS (Chung et al. 2023) on scoreinv's parts: the shipped CT prior as deepinv's
denoiser (Tweedie's formula) and sparse-view Radon as deepinv's physics; PSNR against FBP.

    python examples/python/deepinv_dps.py [MODEL_DIR] [STEPS] [VIEWS]
"""
import sys

import deepinv as dinv
import torch

import scoreinv
from scoreinv import deepinv as sdi
from scoreinv import ops

model_dir = (sys.argv[1:2] or ["data/models/ct-ellipses"])[0]
steps, views = int((sys.argv[2:3] or [1000])[0]), int((sys.argv[3:4] or [8])[0])
device = "cuda" if torch.cuda.is_available() else "cpu"
model = scoreinv.load_model(model_dir, device=device)
x = scoreinv.ground_truth("phantom:ellipses:7000..7004", size=model.sample_shape[-1]).to(device)
A = ops.Radon(x.shape[-1], angles=180, views=views)
physics = sdi.physics(A)
y = physics(x.double())
dps = dinv.sampling.DPS(sdi.denoiser(model), schedule="vp", num_steps=steps, dtype=torch.float64,
                        device=device, verbose=True)
torch.manual_seed(0)
xh = dps(y, physics).float().clamp(0, 1)
fbp = A.fbp(y).float().clamp(0, 1)
for i in range(x.shape[0]):
    print(f"phantom {i}: FBP {scoreinv.psnr(x[i].cpu(), fbp[i].cpu()):.2f} dB, "
          f"DPS {scoreinv.psnr(x[i].cpu(), xh[i].cpu()):.2f} dB")
