#!/usr/bin/env python3
"""Summarises several runs of `scoreinv bench deepinv` (their --json files) into one table: per
task and method, PSNR / SSIM (the same in every run: same measurements, seeds and settings, which
this script checks) and the seconds per case of each run with their median; then scoreinv's
speed-up over each deepinv sampler at equal NFE (K = 1) per run, with the smallest one.

Seconds on a shared 2-core VM vary by tens of percent from run to run, so a single run can
flip a close comparison; the median of the runs and the worst run's ratio say more.

Usage: .venv/bin/python scripts/bench/deepinv_runs.py RUN1.json RUN2.json ... > OUT.txt
"""
import json
import re
import statistics
import sys


def key_of(row):
    """(task, ours-label, K, cases, reference) of a bench row."""
    m = re.match(r"deepinv (.*?): scoreinv (.*) K=(\d+) (\d+) NFE, (\d+) cases$", row["name"])
    if not m:
        raise SystemExit(f"deepinv_runs: unexpected row name {row['name']!r}")
    task, ours, k, _nfe, cases = m.groups()
    return task, ours, int(k), int(cases), row["reference"]


def main(paths):
    if len(paths) < 2:
        raise SystemExit("usage: deepinv_runs.py RUN1.json RUN2.json ...")
    runs = [json.load(open(p)) for p in paths]
    keys = [[key_of(r) for r in run] for run in runs]
    if any(k != keys[0] for k in keys):
        raise SystemExit("deepinv_runs: the runs have different rows (other settings?)")
    # Quality must agree: the same measurements, seeds and settings in every run.
    for i, rows in enumerate(zip(*runs)):
        q = [(round(r["quality"]["psnr_db"], 6), round(r["quality"]["reference_psnr_db"], 6))
             for r in rows]
        if len(set(q)) != 1:
            raise SystemExit(f"deepinv_runs: row {keys[0][i]} has different PSNR across runs: {q}")
    n = len(runs)
    print(f"# {n} runs: " + ", ".join(paths))
    print("# seconds per case, each run and the median; PSNR dB / SSIM (equal in every run)")
    print(f"{'task':<38} {'method':<72} {'K':>2} {'cases':>5} {'PSNR':>6} {'SSIM':>6}  "
          + " ".join(f"{'run' + str(i + 1):>6}" for i in range(n)) + f" {'median':>7}")
    seen = set()
    for i, rows in enumerate(zip(*runs)):
        task, ours, k, cases, ref = keys[0][i]
        q = rows[0]["quality"]
        for label, sec, psnr, ssim, kk in (
            (f"scoreinv {ours}", [r["value"] for r in rows], q["psnr_db"], q["ssim"], k),
            (ref, [r["reference_value"] for r in rows], q["reference_psnr_db"],
             q["reference_ssim"], 1),
        ):
            if (task, label, kk, cases) in seen:
                continue
            seen.add((task, label, kk, cases))
            print(f"{task:<38} {label[:72]:<72} {kk:>2} {cases:>5} {psnr:6.2f} {ssim:6.4f}  "
                  + " ".join(f"{s:6.3f}" for s in sec) + f" {statistics.median(sec):7.3f}")
    print()
    print("# scoreinv's speed-up (reference seconds / scoreinv seconds) at K = 1, per run")
    print(f"{'task':<38} {'reference':<72} {'cases':>5} "
          + " ".join(f"{'run' + str(i + 1):>6}" for i in range(n)) + f" {'min':>6} {'median':>7}")
    for i, rows in enumerate(zip(*runs)):
        task, ours, k, cases, ref = keys[0][i]
        if k != 1:
            continue
        sp = [r["speedup"] for r in rows]
        print(f"{task:<38} {ref[:72]:<72} {cases:>5} " + " ".join(f"{s:6.2f}" for s in sp)
              + f" {min(sp):6.2f} {statistics.median(sp):7.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
