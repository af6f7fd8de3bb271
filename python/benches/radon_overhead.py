"""The cost of calling the Radon operator from Python against calling it from Rust, in the same
process and run: 256×256 images, batch 8, 23 of 180 views, float32 (the issue's overhead row).

    python python/benches/radon_overhead.py [cpu|cuda] [REPS]
"""
import sys
import time

import torch

import scoreinv
from scoreinv import ops

device = torch.device(sys.argv[1] if len(sys.argv) > 1 else "cpu")
reps = int(sys.argv[2]) if len(sys.argv) > 2 else 20
op = ops.Radon(256, angles=180, views=23)
x = torch.rand(8, 1, 256, 256, device=device)
rust = op._rust(torch.float32, device)


def sync():
    if device.type == "cuda":
        torch.cuda.synchronize()


rows = []
for trial in range(3):
    t_rust = rust.time_forward(x, reps)
    op.forward(x)
    sync()
    t0 = time.perf_counter()
    for _ in range(reps):
        op.forward(x)
        sync()
    t_py = (time.perf_counter() - t0) / reps
    rows.append((t_rust, t_py))
    print(f"trial {trial}: Rust {t_rust * 1e3:.3f} ms, Python {t_py * 1e3:.3f} ms, "
          f"overhead {100 * (t_py / t_rust - 1):+.2f} %")
best_rust = min(r for r, _ in rows)
best_py = min(p for _, p in rows)
print(f"{scoreinv.__name__} radon forward 256x256 B=8 on {device}: "
      f"best Rust {best_rust * 1e3:.3f} ms, "
      f"best Python {best_py * 1e3:.3f} ms, overhead {100 * (best_py / best_rust - 1):+.2f} %")
