"""Why the sparse CT backends store `Rᵀ` next to `R`: libtorch's CPU product of the transposed
view `R.t()` (sparse CSC layout) with a dense batch, against the product with `Rᵀ` stored in
CSR, on a banded random matrix shaped like a quarter of the 256², 400-bin, 360-view fan-beam
projection matrix (36 000 rows × 65 536 columns, 435 entries per row, f32), batch 8.

    .venv/bin/python scripts/bench/csr_transposed_product.py --threads 2

Prints one line per product (best of 3 after one warm-up) and the ratio.
"""
import argparse
import time

import torch


def best(f, n=3):
    f()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return min(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows, cols, per, m = 144000 // 4, 65536, 435, 8
    start = torch.randint(0, cols - 2000, (rows, 1))
    col = (start + torch.sort(torch.randint(0, 2000, (rows, per)), dim=1).values).reshape(-1)
    crow = torch.arange(0, rows * per + 1, per, dtype=torch.int32)
    r = torch.sparse_csr_tensor(crow, col.int(), torch.rand(rows * per), (rows, cols))
    y = torch.rand(rows, m)
    rt_view = r.t()
    rt_csr = r.t().to_sparse_csr()
    t_view = best(lambda: rt_view.mm(y))
    t_csr = best(lambda: rt_csr.mm(y))
    diff = (rt_view.mm(y) - rt_csr.mm(y)).abs().max().item()
    print(f"torch {torch.__version__}, {args.threads} threads, R {rows}x{cols}, nnz {rows * per}")
    print(f"R.t() ({rt_view.layout}) @ y: {t_view:.4f} s")
    print(f"R^T stored as CSR @ y: {t_csr:.4f} s")
    print(f"ratio {t_view / t_csr:.1f}x, max |difference| {diff:.2e}")


if __name__ == "__main__":
    main()
