#!/usr/bin/env python3
"""Pairs the few-step test studies of scripts/eval/fewstep with the N = 1000 projection-sampler
studies of the model cards, case by case, and writes docs/results/fewstep/test-summary.{csv,txt}.

The measurements are the same when the baseline that depends only on them (FBP for CT,
zero-filled for MRI and inpainting) gives the same PSNR per case in both studies (to 1e-3 dB);
a study whose baseline differs is left out (with a line saying so), not reported.

Usage (repository root): .venv/bin/python scripts/eval/fewstep_pair.py [docs/results/fewstep]
"""
import csv
import glob
import json
import os
import statistics
import sys

OUT = sys.argv[1] if len(sys.argv) > 1 else "docs/results/fewstep"

# task → (reference file, run label for csv files, baseline that depends on y only,
#         NFE per posterior sample of the reference, where the reference ran)
REFERENCES = {
    "ct-ellipses": ("docs/results/ct-ellipses-12000-steps-test-50-phantoms-h200.csv",
                    "test_chosen_k4", "fbp", "H200 GPU"),
    "ct-body": ("docs/results/ct-body-heldout-and-other-scanners-n1000-k4.json", None, "fbp",
                "2-core CPU"),
    # The cards' MRI studies (docs/results/mri-brain-colin27-*-n1000-k4.json) were made on other
    # measurements than today's binary simulates (their zero-filled PSNR differs), so the few-step
    # MRI tests are paired with an N = 1000 run on today's measurements (scripts/eval/fewstep's
    # test stage).
    "mri-4x": (os.path.join(OUT, "test-mri-4x-score-n1000/metrics.json"), None, "zero-filled",
               "2-core CPU, same run"),
    "mri-8x": (os.path.join(OUT, "test-mri-8x-score-n1000/metrics.json"), None, "zero-filled",
               "2-core CPU, same run"),
    "inpaint": (os.path.join(OUT, "test-inpaint-score-n1000/metrics.json"), None,
                "zero-filled", "2-core CPU, same run"),
}
REF_NFE = 2000  # N = 1000 predictor + 1 000 corrector steps


def records(path, run=None):
    if path.endswith(".csv"):
        with open(path) as f:
            # per-case rows of the run (its "mean" / "std" summary rows are left out)
            rows = [r for r in csv.DictReader(f) if (run is None or r["run"] == run)
                    and r["case"] not in ("mean", "std")]
        return [{"case": r["case"], "method": r["method"], "psnr_db": float(r["psnr_db"]),
                 "ssim": float(r["ssim"]), "seconds": float(r["seconds"] or "nan")}
                for r in rows]
    d = json.load(open(path))
    return d["records"] if isinstance(d, dict) else d


def by(recs, method):
    return {r["case"]: r for r in recs if r["method"] == method}


rows, lines = [], []
for task, (ref_path, run, base, where) in REFERENCES.items():
    studies = sorted(glob.glob(os.path.join(OUT, f"test-{task}-d*/metrics.json")))
    if not studies or not os.path.exists(ref_path):
        lines.append(f"{task}: not run (no study under {OUT} or no reference {ref_path})")
        continue
    ref = records(ref_path, run)
    ref_base, ref_score = by(ref, base), by(ref, "score")
    cases = None
    for st in studies:
        new = records(st)
        new_base = by(new, base)
        st_cases = sorted(new_base)
        missing = [c for c in st_cases if c not in ref_base]
        diff = [c for c in st_cases if c in ref_base
                and abs(new_base[c]["psnr_db"] - ref_base[c]["psnr_db"]) > 1e-3]
        if missing or diff:
            lines.append(f"{task}: {os.path.dirname(st)} left out: not on the reference's "
                         f"measurements (cases missing {missing}, {base} differs on {diff})")
            continue
        cases = st_cases
        settings = json.load(open(st)).get("settings", {}) if st.endswith(".json") else {}
        for method in sorted({r["method"] for r in new}):
            got = by(new, method)
            if method == base:
                continue
            ps = [got[c]["psnr_db"] for c in cases]
            ss = [got[c]["ssim"] for c in cases]
            secs = [got[c]["seconds"] for c in cases]
            nfe = [got[c].get("nfe") for c in cases if got[c].get("nfe") is not None]
            row = {"task": task, "method": method, "cases": len(cases),
                   "psnr_db": statistics.mean(ps), "ssim": statistics.mean(ss),
                   "seconds_per_case": statistics.mean(secs),
                   "nfe_per_sample": nfe[0] if nfe else "",
                   "minus_n1000_db": "", "where": "2-core CPU", "study": st}
            if method not in ("tv",) and ref_score:
                row["minus_n1000_db"] = statistics.mean(
                    got[c]["psnr_db"] - ref_score[c]["psnr_db"] for c in cases)
            rows.append(row)
    if cases is None:
        continue
    rp = [ref_score[c]["psnr_db"] for c in cases]
    rs = [ref_score[c]["ssim"] for c in cases]
    rows.append({"task": task, "method": "score N=1000", "cases": len(cases),
                 "psnr_db": statistics.mean(rp), "ssim": statistics.mean(rs),
                 "seconds_per_case": statistics.mean(ref_score[c]["seconds"] for c in cases),
                 "nfe_per_sample": REF_NFE, "minus_n1000_db": 0.0, "where": where,
                 "study": ref_path + (f" ({run})" if run else "")})

os.makedirs(OUT, exist_ok=True)
keys = ["task", "method", "cases", "psnr_db", "ssim", "nfe_per_sample", "seconds_per_case",
        "minus_n1000_db", "where", "study"]
with open(os.path.join(OUT, "test-summary.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, keys)
    w.writeheader()
    w.writerows(rows)
with open(os.path.join(OUT, "test-summary.txt"), "w") as f:
    f.write(f"{'task':12} {'method':14} {'n':>3} {'PSNR dB':>8} {'SSIM':>7} {'NFE':>5} "
            f"{'s/case':>8} {'- N1000':>8}  {'where':22} study\n")
    for r in rows:
        d = r["minus_n1000_db"]
        f.write(f"{r['task']:12} {r['method']:14} {r['cases']:3d} {r['psnr_db']:8.2f} "
                f"{r['ssim']:7.4f} {str(r['nfe_per_sample']):>5} {r['seconds_per_case']:8.2f} "
                f"{(f'{d:+.2f}' if d != '' else ''):>8}  {r['where']:22} "
                f"""{os.path.basename(os.path.dirname(r['study']))
                     if r['study'].startswith(OUT) else r['study']}\n""")
    for line in lines:
        f.write(line + "\n")
print(open(os.path.join(OUT, "test-summary.txt")).read())
