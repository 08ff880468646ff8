"""`make bench-quality`: model quality at production prevalence, over several seeds.

Trains on the committed training file with each seed and scores the committed evaluation file,
which nothing trains on, with legit rows weighted to the production prevalence (0.172 %). For
each way of choosing the threshold it reports mean and worst F1, PR-AUC, precision, recall and
the threshold, and writes bench/results/quality.json:

- `oof`: `fraudctl train` itself (`train_bundle`, scored through the bundle's serving form):
  out-of-fold scores of 5-fold CV, the threshold for prevalence-weighted F1 on them, then the
  model refit on all training rows;
- `validation-sample-f1`: the previous way: one 20 % validation split, the threshold maximising
  F1 at the sample's own prevalence (2.2 %);
- `validation-weighted-f1`: one validation split, but F1 weighted to the prevalence;
- `oof-logreg`: `fraudctl train --model logreg`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from ml.data import Dataset, load_dataset
from ml.evaluate import DEFAULT_PREVALENCE, Objective, choose_threshold, classification_metrics
from ml.runtime.bundle import load_bundle
from ml.testing.processes import DEV_DATA, EVAL_DATA, REPO
from ml.train import fit, split_dataset, train_bundle

F1 = Objective.parse("f1")
# A trained strategy: how it scores rows of raw features, and its threshold.
Trained = tuple[Callable[[np.ndarray], np.ndarray], float]


def oof(model: str) -> Callable[[Dataset, int], Trained]:
    """Exactly `fraudctl train`: the bundle it builds, scored through its serving form."""

    def train(data: Dataset, seed: int) -> Trained:
        bundle = load_bundle(train_bundle(data, model_name=model, seed=seed))
        return bundle.score, bundle.threshold

    return train


def validation(weighted: bool) -> Callable[[Dataset, int], Trained]:
    def train(data: Dataset, seed: int) -> Trained:
        split = split_dataset(data, seed)
        X_fit, X_val, y_fit, y_val = train_test_split(
            split.X_train, split.y_train, test_size=0.25, stratify=split.y_train, random_state=seed
        )
        preprocessor, fitted = fit("hgb", seed, X_fit, y_fit)
        scores = fitted.predict_proba(preprocessor.transform(X_val))[:, 1]
        prevalence = DEFAULT_PREVALENCE if weighted else float(y_val.mean())

        def score(X: np.ndarray) -> np.ndarray:
            probabilities: np.ndarray = fitted.predict_proba(preprocessor.transform(X))[:, 1]
            return probabilities

        return score, choose_threshold(y_val, scores, prevalence, F1)

    return train


STRATEGIES = {
    "oof": oof("hgb"),
    "validation-sample-f1": validation(weighted=False),
    "validation-weighted-f1": validation(weighted=True),
    "oof-logreg": oof("logreg"),
}
FIGURES = ("f1", "precision", "recall", "pr_auc", "threshold")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--only", choices=sorted(STRATEGIES), action="append")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "quality.json")
    args = parser.parse_args()
    train_data, eval_data = load_dataset(DEV_DATA), load_dataset(EVAL_DATA)
    results: dict[str, Any] = {}
    for name in args.only or STRATEGIES:
        runs = []
        started = time.perf_counter()
        for seed in range(args.seeds):
            score, threshold = STRATEGIES[name](train_data, seed)
            scores = score(eval_data.X)
            metrics = classification_metrics(eval_data.y, scores, threshold, DEFAULT_PREVALENCE)
            runs.append({"seed": seed} | {k: metrics[k] for k in (*FIGURES, "sample_f1")})
        summary = {
            figure: {
                "mean": statistics.fmean(r[figure] for r in runs),
                "worst": min(r[figure] for r in runs),
            }
            for figure in (*FIGURES, "sample_f1")
        }
        results[name] = {"summary": summary, "runs": runs}
        thresholds = ", ".join(f"{r['threshold']:.3f}" for r in runs)
        print(
            f"{name:24s} F1 mean {summary['f1']['mean']:.3f} worst {summary['f1']['worst']:.3f}"
            f" | PR-AUC mean {summary['pr_auc']['mean']:.3f} worst {summary['pr_auc']['worst']:.3f}"
            f" | threshold {thresholds}"
            f" | sample F1 mean {summary['sample_f1']['mean']:.3f}"
            f" ({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    payload = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "train": str(DEV_DATA.relative_to(REPO)),
        "evaluation": str(EVAL_DATA.relative_to(REPO)),
        "evaluation_rows": eval_data.n_rows,
        "evaluation_frauds": eval_data.n_fraud,
        "prevalence": DEFAULT_PREVALENCE,
        "seeds": args.seeds,
        "strategies": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
