"""What the report says in words: each drift method and number in a sentence, and the
engine's cause hints (``DriftResult.cause``) as a reader should take them.

A cause hint is a short code because the engine, the API and alerts match on it; a reader of
a report needs the sentence. The hints come in two classes a reader must tell apart: a
*pipeline* problem (a unit change, a missing-value jump, new categories, a column gone) is
fixed upstream of the model; a *world* change (a distribution shift) is confirmed with the
data owners and may need retraining.

Example:
    >>> cause_words("unit_change:x1000")
    'the values look multiplied by 1000 against the reference: a unit change upstream (ms vs s, cents vs dollars)?'
    >>> cause_class("unit_change:x1000"), cause_class("distribution_shift")
    ('pipeline', 'world')
"""

from __future__ import annotations

from infersight.stats.causes import cause_class

__all__ = ["METHODS", "COLUMNS", "method_sentence", "cause_words", "cause_class"]

# One sentence per registered method name (``infersight drift --method``'s names).
METHODS: dict[str, str] = {
    "ks+wasserstein": (
        "The default for numbers: drift when the Kolmogorov–Smirnov test is significant (p < alpha) and "
        "the Wasserstein distance divided by the reference's standard deviation (the statistic) is at "
        "least the threshold, so big samples do not flag harmless differences."
    ),
    "chi2+cohen_w": (
        "The default for categories: drift when a chi-square test on the category counts is significant "
        "(p < alpha, rare categories pooled) and Cohen's w, sqrt(Σ (q − p)² / p) (the statistic), is at "
        "least the threshold; a share of never-seen categories is drift on its own."
    ),
    "ks": "Kolmogorov–Smirnov: the largest gap between the two cumulative distributions; drift when p < alpha.",
    "wasserstein": (
        "Wasserstein (earth mover's) distance divided by the reference's standard deviation: how far, "
        "in reference spreads, the values moved; drift at or above the threshold."
    ),
    "psi": (
        "Population stability index on the reference's deciles: Σ (q − p) ln(q / p); "
        "0.1 is a small change, 0.2 (the threshold) a large one."
    ),
    "jensen_shannon": (
        "Jensen–Shannon distance (base 2) between the two distributions on deciles or categories: "
        "0 when equal, 1 when disjoint."
    ),
    "chi2": "Pearson chi-square on the reference-versus-current table of counts; drift when p < alpha.",
    "total_variation": "Total variation distance, ½ Σ |p − q| over categories: the share of rows that would have to move.",
    "unseen_rate": "The share of rows holding categories the reference never saw.",
    "mmd": (
        "Maximum mean discrepancy between the joint distributions of the features (a kernel two-sample "
        "test on a reduced sample): catches features that moved together while each looks fine alone."
    ),
    "bbse": (
        "Black-box shift estimation: the label distribution implied by the predictions and the "
        "validation confusion matrix, compared with training's."
    ),
    "presence": "The reference has this feature and the data does not: a finding of its own, reported as drift.",
}

# What each column of the drift table means.
COLUMNS: dict[str, str] = {
    "statistic": (
        "the method's measure of difference (for the defaults, the effect size: Wasserstein / std or Cohen's w)"
    ),
    "threshold": "the value the statistic must reach to count (for the defaults, the minimum effect size)",
    "p-value": (
        "the chance of a difference at least this large between two samples of the same distribution; "
        "small means the difference is unlikely to be sampling noise"
    ),
    "drifted": "the method's verdict: yes only when every condition of the method held",
    "cause": "what the engine thinks moved, from the shape of the change",
}


def method_sentence(method: str) -> str:
    """The sentence for ``method`` (a registered name), or a pointer to the docs for others."""
    return METHODS.get(method, f"{method}: a registered drift method; see docs/statistics.md for what it measures.")


def cause_words(cause: str | None) -> str:
    """The cause hint ``cause`` as a sentence (``""`` without one)."""
    if not cause:
        return ""
    head, _, arg = cause.partition(":")
    if head == "unit_change":
        factor = arg.lstrip("x") or "a constant factor"
        return (
            f"the values look multiplied by {factor} against the reference: "
            "a unit change upstream (ms vs s, cents vs dollars)?"
        )
    if head == "missing_rate_jump":
        return "the share of missing values jumped: a failed lookup or join, or a default turned null, upstream?"
    if head == "unseen_categories":
        return "values the reference never saw: a changed enum, vocabulary or encoding upstream?"
    if head == "constant_column":
        return "every row holds the same value: a stuck default or a broken feature computation?"
    if head == "feature_missing":
        return "the column is not in the data: renamed or dropped upstream?"
    if head == "distribution_shift":
        return "the values moved with no sign of a pipeline fault: has the population changed?"
    if head in ("joint_distribution_shift", "joint_shift"):
        return "the features moved together (their joint distribution changed)"
    if head == "label_shift":
        return "the mix of predicted classes moved: the base rates of the labels may have changed"
    return cause.replace("_", " ")
