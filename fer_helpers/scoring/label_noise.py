"""How far FER-2013's labels agree with the FER+ crowd, and reference points to read a model's accuracy against.

Agreement of the label with the crowd's plurality per split (with Wilson intervals), the confusion between the two,
the reference points (the plurality answer, and a vote-share predictor fitted on Training and scored on a test split),
the boundary shift toward Neutral behind most of the disagreement, and models scored against the crowd instead of the
label. The votes themselves are read, checked and joined in `ferplus`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from fer_helpers.data.fer2013 import CLASS_NAMES, NUM_CLASSES, SPLITS
from fer_helpers.data.ferplus import (
    NO_VOTES,
    TIE,
    VOTE_COLUMNS,
    check_votes,
    crowd_plurality,
    top_column,
    vote_distribution,
)
from fer_helpers.scoring.metrics import confusion
from fer_helpers.scoring.statistics import SIGNIFICANCE, mcnemar

OUTCOMES: tuple[str, ...] = ("emotion", "contempt", "unknown", "NF", "tie", "no votes")


@dataclass(frozen=True)
class ReferencePoints:
    """Accuracies against the FER-2013 labels of simple crowd-based predictors, over the n faces with emotion votes
    (see reference_points). Reference points, not bounds: a predictor that uses more of the votes can score higher."""

    plurality: float  # a predictor that answers each face's most-voted emotion (ties split evenly)
    label_draw: float  # mean p_crowd(label): one random emotion vote agreeing with the label
    best_if_drawn: float  # mean max p_crowd: the most-voted answer's accuracy if labels were crowd draws
    n: int


@dataclass(frozen=True, eq=False)
class VoteShareReference:
    """A multinomial logistic regression from each face's ten vote shares to its FER-2013 label (vote_share_reference)."""

    accuracy: float  # on the scored split's faces with emotion votes
    accuracy_ci95: tuple[float, float]  # percentile bootstrap over those faces
    n: int  # faces scored
    n_fit: int  # faces it was fitted on
    fit_split: str
    split: str
    preds: np.ndarray  # (n,) its answer for each scored face
    scored: np.ndarray  # (faces of split,) bool: which faces of the split were scored (those with emotion votes)


def _check_labels(labels: np.ndarray, n: int) -> np.ndarray:
    labels = np.asarray(labels)
    valid = labels.shape == (n,) and np.issubdtype(labels.dtype, np.integer)
    if not valid or np.any((labels < 0) | (labels >= NUM_CLASSES)):
        raise ValueError(f"labels must be ({n},) FER-2013 class indices 0..{NUM_CLASSES - 1}")
    return labels


def crowd_outcomes(votes: np.ndarray, usage: np.ndarray, ties: str = "first") -> pd.DataFrame:
    """Faces per split (rows) by what the crowd's most-voted column is (columns: OUTCOMES).

    "emotion": one of FER-2013's seven (the faces crowd_plurality decides); "contempt", "unknown", "NF"; "tie": a
    tie for the most votes under ties="exclude"; "no votes". Each row sums to the faces of its split.
    """
    column = top_column(votes, ties)
    usage = _check_usage(usage, len(column))
    outcome = np.full(len(column), "emotion", dtype=object)
    for name in ("contempt", "unknown", "NF"):
        outcome[column == VOTE_COLUMNS.index(name)] = name
    outcome[column == TIE] = "tie"
    outcome[column == NO_VOTES] = "no votes"
    splits = [split for split in SPLITS if np.any(usage == split)]
    table = pd.crosstab(
        pd.Categorical(usage, categories=splits), pd.Categorical(outcome, categories=OUTCOMES), dropna=False
    )
    table.index.name, table.columns.name = "split", "crowd's top vote"
    return table


def _check_usage(usage: np.ndarray, n: int) -> np.ndarray:
    usage = np.asarray(usage).astype(str)
    if usage.shape != (n,) or not np.isin(usage, SPLITS).all():
        raise ValueError(f"usage must be ({n},) split names, each one of {', '.join(SPLITS)}")
    return usage


def _wilson(agree: int, n: int) -> tuple[float, float]:
    if n == 0:
        return float("nan"), float("nan")
    interval = binomtest(agree, n).proportion_ci(confidence_level=0.95, method="wilson")
    return float(interval.low), float(interval.high)


def agreement(labels: np.ndarray, votes: np.ndarray, usage: np.ndarray, ties: str = "first") -> pd.DataFrame:
    """How often the FER-2013 label equals the crowd's plurality, per split and per FER-2013 label class.

    Index (split, class), class "all" first. Columns: n (faces with an emotion plurality, which alone are
    counted), agree, rate = agree / n, ci_low and ci_high (95% Wilson interval), undecided (faces left out:
    plurality contempt, unknown, NF, a tie under ties="exclude", or no votes).
    """
    plurality = crowd_plurality(votes, ties)
    labels = _check_labels(labels, len(plurality))
    usage = _check_usage(usage, len(plurality))
    decided = plurality >= 0
    agrees = decided & (plurality == labels)
    rows, index = [], []
    for split in [split for split in SPLITS if np.any(usage == split)]:
        in_split = usage == split
        groups = [("all", in_split)] + [(name, in_split & (labels == c)) for c, name in enumerate(CLASS_NAMES)]
        for name, group in groups:
            n, agree = int(np.sum(group & decided)), int(np.sum(group & agrees))
            low, high = _wilson(agree, n)
            rows.append(
                {
                    "n": n,
                    "agree": agree,
                    "rate": agree / n if n else float("nan"),
                    "ci_low": low,
                    "ci_high": high,
                    "undecided": int(np.sum(group & ~decided)),
                }
            )
            index.append((split, name))
    return pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=["split", "class"]))


def label_confusion(labels: np.ndarray, plurality: np.ndarray) -> pd.DataFrame:
    """7x7 face counts: FER-2013 label (rows) by crowd plurality (columns), faces with plurality -1 left out."""
    plurality = np.asarray(plurality)
    labels = _check_labels(labels, len(plurality))
    if plurality.ndim != 1 or np.any((plurality < -1) | (plurality >= NUM_CLASSES)):
        raise ValueError("plurality must be (N,) FER-2013 class indices or -1, as crowd_plurality gives")
    decided = plurality >= 0
    return pd.DataFrame(
        confusion(labels[decided], plurality[decided]),
        index=pd.Index(CLASS_NAMES, name="FER-2013 label"),
        columns=pd.Index(CLASS_NAMES, name="crowd plurality"),
    )


def reference_points(labels: np.ndarray, votes: np.ndarray) -> ReferencePoints:
    """Expected accuracies against the single FER-2013 labels of predictors that know each face's crowd distribution p.

    Over the n faces with at least one vote for FER-2013's seven emotions (p = vote_distribution):
    - plurality: mean over faces of [label is p's most-voted class], a tie of k classes counting 1/k when the label
      is among them: the accuracy of a predictor that answers p's most-voted class (ties at random);
    - label_draw: mean over faces of p(label): the chance that one random annotator's emotion vote equals the
      label, i.e. the accuracy of a predictor that answers with one random crowd vote;
    - best_if_drawn: mean over faces of max p: the accuracy of the most-voted answer if each FER-2013 label were
      one random draw from p.
    Each is one way of reading the votes, not a bound on accuracy: FER-2013's labels are not draws from p (its
    labellers read many faces the crowd calls Neutral as Sad, Fear or Angry), so a predictor that learns how the
    votes map onto the labels scores higher (vote_share_reference).
    """
    p = vote_distribution(votes)
    labels = _check_labels(labels, len(p))
    voted = ~np.isnan(p[:, 0])
    p, labels = p[voted], labels[voted]
    if len(p) == 0:
        return ReferencePoints(plurality=float("nan"), label_draw=float("nan"), best_if_drawn=float("nan"), n=0)
    top = p.max(axis=1)
    tied = p == top[:, None]
    rows = np.arange(len(p))
    return ReferencePoints(
        plurality=float(np.mean(tied[rows, labels] / tied.sum(axis=1))),
        label_draw=float(np.mean(p[rows, labels])),
        best_if_drawn=float(np.mean(top)),
        n=len(p),
    )


VOTE_SHARE_C = 1.0  # vote_share_reference's inverse regularisation strength (scikit-learn's default), fixed, not tuned


def vote_shares(votes: np.ndarray) -> np.ndarray:
    """(N,10) share of each face's votes in each of FER+'s ten columns (contempt, unknown and NF included); zeros
    for a face without votes."""
    votes = check_votes(votes)
    return votes / np.maximum(votes.sum(axis=1, keepdims=True), 1)


def vote_share_reference(
    labels: np.ndarray,
    votes: np.ndarray,
    usage: np.ndarray,
    fit_split: str = "Training",
    split: str = "PrivateTest",
    seed: int = 0,
) -> VoteShareReference:
    """A reference point that learns how the crowd's votes map onto FER-2013's labels: a multinomial logistic
    regression from each face's ten vote shares (vote_shares) to its FER-2013 label, fitted on the fit_split faces
    with emotion votes and scored on the split's faces with emotion votes (the faces reference_points uses), with a
    percentile-bootstrap 95% interval over those faces. It sees only the votes, never a pixel, and is fitted
    on other faces than it is scored on; C = VOTE_SHARE_C, fixed.
    """
    from sklearn.linear_model import LogisticRegression

    from fer_helpers.scoring.statistics import bootstrap_ci

    votes = check_votes(votes)
    labels = _check_labels(labels, len(votes))
    usage = _check_usage(usage, len(votes))
    voted = ~np.isnan(vote_distribution(votes)[:, 0])
    fit, scored = (usage == fit_split) & voted, (usage == split) & voted
    if not fit.any() or not scored.any():
        raise ValueError(f"vote_share_reference needs {fit_split} and {split} faces with emotion votes")
    model = LogisticRegression(C=VOTE_SHARE_C, max_iter=2000, random_state=seed)
    model.fit(vote_shares(votes[fit]), labels[fit])
    preds = model.predict(vote_shares(votes[scored])).astype(np.int64)
    truth = labels[scored]
    low, high = bootstrap_ci(truth, preds)
    return VoteShareReference(
        accuracy=float(np.mean(preds == truth)),
        accuracy_ci95=(float(low), float(high)),
        n=int(scored.sum()),
        n_fit=int(fit.sum()),
        fit_split=fit_split,
        split=split,
        preds=preds,
        scored=scored[usage == split],
    )


NEUTRAL = CLASS_NAMES.index("Neutral")


def boundary_shift(labels: np.ndarray, votes: np.ndarray, toward: int = NEUTRAL) -> pd.DataFrame:
    """Where the crowd draws the class boundaries elsewhere than FER-2013: per FER-2013 label class, over the faces
    with an emotion plurality (crowd_plurality, ties to the first column).

    Index: class. Columns: n (faces of that label with an emotion plurality); to_<toward> (share of them whose
    plurality is the class `toward`, Neutral by default) with its 95% Wilson interval (ci_low, ci_high);
    label_share (the class's share of all those faces' labels) and plurality_share (its share of their pluralities).
    """
    plurality = crowd_plurality(votes)
    labels = _check_labels(labels, len(plurality))
    decided = plurality >= 0
    labels, plurality = labels[decided], plurality[decided]
    rows = []
    for c in range(NUM_CLASSES):
        mine = labels == c
        moved = int(np.sum(plurality[mine] == toward))
        low, high = _wilson(moved, int(mine.sum()))
        rows.append(
            {
                "n": int(mine.sum()),
                f"to_{CLASS_NAMES[toward]}": moved / mine.sum() if mine.any() else float("nan"),
                "ci_low": low,
                "ci_high": high,
                "label_share": float(np.mean(mine)) if len(labels) else float("nan"),
                "plurality_share": float(np.mean(plurality == c)) if len(labels) else float("nan"),
            }
        )
    return pd.DataFrame(rows, index=pd.Index(CLASS_NAMES, name="class"))


def disagreement_toward(labels: np.ndarray, votes: np.ndarray, toward: int = NEUTRAL) -> dict:
    """Of the faces whose FER-2013 label differs from the crowd's emotion plurality, how many the crowd calls
    `toward` (Neutral by default): {"disagree", "toward", "share"}."""
    plurality = crowd_plurality(votes)
    labels = _check_labels(labels, len(plurality))
    disagree = (plurality >= 0) & (plurality != labels)
    toward_count = int(np.sum(disagree & (plurality == toward)))
    n = int(disagree.sum())
    return {"disagree": n, "toward": toward_count, "share": toward_count / n if n else float("nan")}


def crowd_scores(labels: np.ndarray, preds: np.ndarray, votes: np.ndarray, ties: str = "first") -> dict:
    """A model's accuracy against the FER-2013 labels, against the crowd's plurality, and where the two agree.

    - accuracy: preds == labels over all n faces;
    - crowd_accuracy: preds == crowd plurality over the n_crowd faces with an emotion plurality;
    - agreed_accuracy: over the n_agreed faces whose label equals the plurality (both judges say the same);
    - errors: faces where preds != labels; crowd_sides_with_model: those among them where the model answers the
      crowd's plurality (so the label is not it), and crowd_share_of_errors = crowd_sides_with_model / errors.
    """
    plurality = crowd_plurality(votes, ties)
    labels = _check_labels(labels, len(plurality))
    preds = _check_labels(preds, len(plurality))
    decided = plurality >= 0
    agreed = decided & (plurality == labels)
    errors = preds != labels
    sides = errors & decided & (preds == plurality)

    def rate(hits: np.ndarray, among: np.ndarray) -> float:
        return float(hits[among].mean()) if among.any() else float("nan")

    return {
        "n": len(labels),
        "accuracy": rate(preds == labels, np.ones(len(labels), dtype=bool)),
        "n_crowd": int(decided.sum()),
        "crowd_accuracy": rate(preds == plurality, decided),
        "n_agreed": int(agreed.sum()),
        "agreed_accuracy": rate(preds == labels, agreed),
        "errors": int(errors.sum()),
        "crowd_sides_with_model": int(sides.sum()),
        "crowd_share_of_errors": rate(sides, errors),
    }


def crowd_score_table(
    results_by_model: dict, labels: np.ndarray, votes: np.ndarray, split: str = "PrivateTest"
) -> pd.DataFrame:
    """crowd_scores of every model on one split, averaged over its runs (seeds); one row per model.

    results_by_model: model -> runs (RunResults, as report.collect_results gives); labels and votes: the split's
    FER-2013 labels and crowd votes, in the order the runs scored the split (a run scored on other faces is an error).
    """
    rows = {}
    for model, runs in results_by_model.items():
        per_run = []
        for run in runs:
            if not np.array_equal(run.labels[split], labels):
                raise ValueError(f"{model} (seed {run.seed}) scored other {split} faces than the votes are for")
            per_run.append(crowd_scores(labels, run.preds(split), votes))
        if per_run:
            rows[model] = {"seeds": len(per_run), **pd.DataFrame(per_run).mean().to_dict()}
    columns = [
        "seeds",
        "n",
        "accuracy",
        "n_crowd",
        "crowd_accuracy",
        "n_agreed",
        "agreed_accuracy",
        "errors",
        "crowd_sides_with_model",
        "crowd_share_of_errors",
    ]
    table = pd.DataFrame.from_dict(rows, orient="index", columns=columns).rename_axis("model")
    for column in ("seeds", "n", "n_crowd", "n_agreed", "errors", "crowd_sides_with_model"):
        if np.all(table[column] == table[column].round()):  # counts stay whole unless seeds average them
            table[column] = table[column].astype(int)
    return table


def target_comparison(
    pairs: dict, votes: np.ndarray, usage: np.ndarray, splits: tuple[str, ...] = ("PublicTest", "PrivateTest")
) -> pd.DataFrame:
    """Each crowd-target run against its label twin, per split, scored against FER-2013's labels and the crowd.

    pairs: model -> {"labels": run, "crowd": run} (train.crowd_runs); votes, usage: for all faces of the data the
    runs scored. Index (model, split); for each judge ("" = FER-2013's labels, "crowd_" = the crowd plurality, on the
    faces that have an emotion plurality): both runs' accuracies, delta (crowd run minus label run, in points) and
    McNemar's p on the same faces.
    """
    usage = _check_usage(usage, len(check_votes(votes)))
    rows, index = [], []
    for model, runs in pairs.items():
        label_run, crowd_run = runs["labels"], runs["crowd"]
        for split in splits:
            labels = label_run.labels[split]
            if not np.array_equal(crowd_run.labels[split], labels) or int(np.sum(usage == split)) != len(labels):
                raise ValueError(f"{model}: the two runs and the votes do not cover the same {split} faces")
            plurality = crowd_plurality(votes[usage == split])
            decided = plurality >= 0
            row = {"n": len(labels), "n_crowd": int(decided.sum())}
            for judge, truth, faces in (("", labels, slice(None)), ("crowd_", plurality, decided)):
                a, b = label_run.preds(split)[faces], crowd_run.preds(split)[faces]
                acc_a, acc_b = float(np.mean(a == truth[faces])), float(np.mean(b == truth[faces]))
                row |= {
                    f"{judge}label_run": acc_a,
                    f"{judge}crowd_run": acc_b,
                    f"{judge}delta": 100 * (acc_b - acc_a),
                    f"{judge}mcnemar_p": mcnemar(truth[faces], a, b)["p_value"],
                }
            rows.append(row)
            index.append((model, split))
    return pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=["model", "split"]))


def target_change(delta: float, p_value: float) -> str:
    """What training on the crowd's votes did to one score, in words: better or worse where McNemar's p is under
    SIGNIFICANCE, within chance otherwise (delta in points, crowd run minus label run)."""
    if p_value >= SIGNIFICANCE:
        return f"within chance ({delta:+.1f} points, p = {p_value:.2g})"
    return f"**{'better' if delta > 0 else 'worse'}** ({delta:+.1f} points, p = {p_value:.2g})"
