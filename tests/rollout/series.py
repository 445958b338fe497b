"""Analysis windows of one interval per version, as read from Prometheus during a canary (counts over the
window): a healthy pair, and one pair per way a challenger fails a check."""

from __future__ import annotations

from dataclasses import replace

from asteroid.rollout.analysis import VersionWindow

CHAMPION = VersionWindow(requests=540, errors=0, latency_p99_s=0.012, answered_rows=540, hazardous_rows=86,
                         labelled=0)  # fmt: skip
HEALTHY = VersionWindow(requests=60, errors=0, latency_p99_s=0.014, answered_rows=60, hazardous_rows=10)
FAILING = {
    # the injected serving fault: a fifth of the requests answered 500
    "error_rate": replace(HEALTHY, errors=12, answered_rows=48, hazardous_rows=8),
    # …adding latency
    "latency_p99": replace(HEALTHY, latency_p99_s=0.9),
    # …drifting decisions: everything answered hazardous
    "hazardous_rate": replace(HEALTHY, hazardous_rows=60),
}
LABELLED_CHAMPION = replace(CHAMPION, labelled=200, correct=190, true_positives=30, false_negatives=2)
LABELLED_WORSE_RECALL = replace(HEALTHY, labelled=40, correct=39, true_positives=20, false_negatives=3)
QUIET = VersionWindow(requests=5, errors=0, latency_p99_s=0.01, answered_rows=5, hazardous_rows=1)
