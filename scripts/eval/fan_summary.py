#!/usr/bin/env python3
"""Fan-beam and limited-angle CT on real slices (scripts/eval/fewstep, tasks ct-*-fan and
ct-*-limited): per study, the mean PSNR / SSIM of FBP, TV and the few-step sampler, the score
method's margins over FBP and TV with their worst case, and the cases it leads TV on, against
issue #37's goals (fan: score >= FBP + 8 dB and >= TV + 1.5 dB; limited angle: >= TV + 2 dB).
Reads docs/results/fewstep/test-<task>-<method>/metrics.csv; writes
docs/results/fewstep/fan-summary.{txt,csv}."""
import csv
import glob
import os
import statistics
import sys

root = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "results", "fewstep")
GOALS = {"fan": {"fbp": 8.0, "tv": 1.5}, "limited": {"tv": 2.0}}
rows = []
for d in sorted(glob.glob(os.path.join(root, "test-ct-*-fan-*")) +
                sorted(glob.glob(os.path.join(root, "test-ct-*-limited-*")))):
    if not os.path.isdir(d):
        continue
    if not os.path.isfile(os.path.join(d, "metrics.csv")):
        print(f"fan_summary: {d}: no metrics.csv (not run or not finished), left out",
              file=sys.stderr)
        continue
    name = os.path.basename(d)[len("test-"):]
    task, method = name.rsplit("-", 1)
    kind = "fan" if task.endswith("-fan") else "limited"
    per = {}
    with open(os.path.join(d, "metrics.csv")) as f:
        for r in csv.DictReader(f):
            if r["case"] in ("mean", "std", "") or r["method"] == "":
                continue
            try:
                per.setdefault(r["method"], {})[r["case"]] = (float(r["psnr_db"]), float(r["ssim"]),
                                                              float(r["seconds"] or "nan"))
            except ValueError:
                continue
    cases = sorted(per[method])
    if set(cases) != set(per["fbp"]) or set(cases) != set(per["tv"]):
        sys.exit(f"fan_summary: {name}: the methods cover different cases")
    mean = {m: statistics.mean(per[m][c][0] for c in cases) for m in ("fbp", "tv", method)}
    ssim = {m: statistics.mean(per[m][c][1] for c in cases) for m in ("fbp", "tv", method)}
    secs = statistics.mean(per[method][c][2] for c in cases)
    d_fbp = [per[method][c][0] - per["fbp"][c][0] for c in cases]
    d_tv = [per[method][c][0] - per["tv"][c][0] for c in cases]
    goal = GOALS[kind]
    met = all((mean[method] - mean[b]) >= g for b, g in goal.items())
    rows.append(dict(study=task, method=method, cases=len(cases),
                     fbp=round(mean["fbp"], 2), tv=round(mean["tv"], 2),
                     score=round(mean[method], 2),
                     fbp_ssim=round(ssim["fbp"], 4), tv_ssim=round(ssim["tv"], 4),
                     score_ssim=round(ssim[method], 4),
                     minus_fbp=round(mean[method] - mean["fbp"], 2),
                     worst_minus_fbp=round(min(d_fbp), 2),
                     minus_tv=round(mean[method] - mean["tv"], 2),
                     worst_minus_tv=round(min(d_tv), 2),
                     ahead_of_tv=sum(x > 0 for x in d_tv), seconds_per_case=round(secs, 2),
                     goal=" and ".join(f">= {b.upper()} + {g}" for b, g in goal.items()),
                     goal_met="yes" if met else "no"))
if not rows:
    sys.exit("fan_summary: no test-ct-*-fan-* or test-ct-*-limited-* study "
             "under docs/results/fewstep")
keys = list(rows[0])
with open(os.path.join(root, "fan-summary.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=keys)
    w.writeheader()
    w.writerows(rows)
lines = [f"{'study':<16} {'method':<8} {'n':>3} {'FBP':>6} {'TV':>6} {'score':>6} "
         f"{'-FBP':>6} {'(worst)':>7} {'-TV':>6} {'(worst)':>7} {'>TV':>4} {'s/case':>6}  goal"]
for r in rows:
    lines.append(f"{r['study']:<16} {r['method']:<8} {r['cases']:>3} "
                 f"{r['fbp']:6.2f} {r['tv']:6.2f} "
                 f"{r['score']:6.2f} {r['minus_fbp']:+6.2f} {r['worst_minus_fbp']:+7.2f} "
                 f"{r['minus_tv']:+6.2f} {r['worst_minus_tv']:+7.2f} {r['ahead_of_tv']:>4} "
                 f"{r['seconds_per_case']:6.2f}  {r['goal']}: {r['goal_met']}")
text = "\n".join(lines) + "\n"
with open(os.path.join(root, "fan-summary.txt"), "w") as f:
    f.write(text)
print(text, end="")
