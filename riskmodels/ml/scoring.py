"""Score applicants: probability of default, the decision at a cutoff, a score band, and reasons that matter.

One explainer pass gives both the PD and the contributions: for tree and linear models the
explainer's output *is* the model's own output (``decision_function`` or ``predict_proba`` on
the same preprocessed row), so the PD and its reasons cannot come from different models.

Contributions are stated in log-odds of default for every algorithm. Explainers whose output
is a probability (random forest, MLP, SVM) are rescaled by the secant of the logit between the
base value and the output: each contribution keeps its share of the move and the sum is the
move in log-odds, so rankings and additivity survive and one materiality rule fits all models.

A reason must matter. Listing the four largest positive contributions names noise features
whenever one or two features carry the decision, so a feature is a reason only if its push
toward default is at least ``materiality_share`` of the applicant's total adverse push *and*
at least ``materiality_min_log_odds``: an applicant may get fewer than four reasons. Protected
attributes are never reasons; when one is a feature (an approved exception) and its push
outweighs every listed reason, the result is flagged rather than explained by what is left.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.special import expit, logit

from riskmodels.ml.explain import ADDITIVITY_TOLERANCE, OUTPUT_LOG_ODDS, Attributions, ModelExplainer
from riskmodels.ml.explain.reasons import MAX_REASONS, LocalExplanation, default_reason_text

__all__ = [
    "APPROVE",
    "DECLINE",
    "FLAG_PROTECTED_OUTWEIGHS",
    "FLAG_UNSEEN_CATEGORY",
    "REFER",
    "Band",
    "Reason",
    "ScoredApplicant",
    "ScoredBatch",
    "ScoringError",
    "ScoringPolicy",
    "in_log_odds",
    "material_reasons",
    "score_matrix",
    "score_rows",
    "to_log_odds",
]

APPROVE, REFER, DECLINE = "approve", "refer", "decline"
FLAG_PROTECTED_OUTWEIGHS = "protected_attribute_outweighs_reasons"
FLAG_UNSEEN_CATEGORY = "unseen_category"
# Outputs of exactly 0 or 1 (a forest whose trees all agree) have no finite logit.
_PD_CLIP = 1e-9


class ScoringError(ValueError):
    """Report a scoring policy or input that cannot be used, with the reason."""


@dataclass(frozen=True)
class Band:
    """A score band: applicants whose PD is below ``upper`` (and at or above the previous band's)."""

    name: str
    upper: float


def _unit(name: str, value: Any, *, closed_high: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ScoringError(f"{name} must be a number; got {value!r}")
    if not (0 < value < 1 or (closed_high and value == 1)):
        raise ScoringError(f"{name} must be between 0 and 1; got {value!r}")
    return float(value)


@dataclass(frozen=True)
class ScoringPolicy:
    """How a PD becomes a decision, a band and reasons.

    Decline at ``pd >= cutoff``; refer at ``refer_from <= pd < cutoff`` when ``refer_from`` is
    set; approve below. ``bands`` have ascending upper bounds, the last one 1.0.
    """

    cutoff: float
    refer_from: float | None = None
    bands: tuple[Band, ...] = (Band("A", 0.05), Band("B", 0.10), Band("C", 0.20), Band("D", 0.35),
                               Band("E", 1.0))
    materiality_share: float = 0.10
    materiality_min_log_odds: float = 0.05
    max_reasons: int = MAX_REASONS

    def __post_init__(self) -> None:
        _unit("cutoff", self.cutoff)
        if self.refer_from is not None and not _unit("refer_from", self.refer_from) < self.cutoff:
            raise ScoringError(f"refer_from ({self.refer_from}) must be below the cutoff ({self.cutoff})")
        if not self.bands:
            raise ScoringError("bands must name at least one band")
        uppers = [_unit(f"band {b.name!r} upper", b.upper, closed_high=True) for b in self.bands]
        if any(b >= a for a, b in zip(uppers[1:], uppers, strict=False)) or uppers[-1] != 1.0:
            raise ScoringError("band upper bounds must ascend strictly and the last must be 1.0")
        if len({b.name for b in self.bands}) != len(self.bands) or not all(b.name for b in self.bands):
            raise ScoringError("band names must be distinct and non-empty")
        if not 0 <= self.materiality_share < 1:
            raise ScoringError(f"materiality_share must be in [0, 1); got {self.materiality_share!r}")
        if not self.materiality_min_log_odds >= 0:
            raise ScoringError(f"materiality_min_log_odds must be >= 0; got {self.materiality_min_log_odds!r}")
        if not 1 <= self.max_reasons <= MAX_REASONS:
            raise ScoringError(f"max_reasons must be between 1 and {MAX_REASONS}; got {self.max_reasons!r}")

    def decide(self, pd_: float) -> str:
        """Return the decision at this policy's cutoff (and refer band)."""
        if pd_ >= self.cutoff:
            return DECLINE
        if self.refer_from is not None and pd_ >= self.refer_from:
            return REFER
        return APPROVE

    def band(self, pd_: float) -> str:
        """Return the name of the band ``pd_`` falls in."""
        for band in self.bands:
            if pd_ < band.upper:
                return band.name
        return self.bands[-1].name

    def to_dict(self) -> dict[str, Any]:
        """Return the policy as a JSON-serialisable dict (recorded with every decision)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoringPolicy:
        """Build a policy from :meth:`to_dict` output or a stored configuration; bad values raise ScoringError."""
        known = {"cutoff", "refer_from", "bands", "materiality_share", "materiality_min_log_odds", "max_reasons"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ScoringError(f"unknown scoring policy settings: {', '.join(unknown)}")
        values = dict(data)
        if "bands" in values:
            try:
                values["bands"] = tuple(Band(str(b["name"]), b["upper"]) for b in values["bands"])
            except (TypeError, KeyError):
                raise ScoringError("bands must be a list of {name, upper} objects") from None
        if "cutoff" not in values:
            raise ScoringError("a scoring policy needs a cutoff")
        return cls(**values)


@dataclass(frozen=True)
class Reason:
    """One principal reason: a feature whose push toward default is material."""

    rank: int
    feature: str
    contribution: float  # log-odds of default
    share: float  # of the applicant's total adverse push
    text: str

    def to_dict(self) -> dict[str, Any]:
        """Return the reason as a JSON-serialisable dict."""
        # Spelt out: asdict's recursive copy cost more than the rest of a batch row's reasons.
        return {"rank": self.rank, "feature": self.feature, "contribution": self.contribution, "share": self.share,
                "text": self.text}


@dataclass(frozen=True)
class ScoredApplicant:
    """What scoring one applicant gives: PD, decision, band, reasons, and the contributions behind them."""

    pd: float
    decision: str
    band: str
    reasons: tuple[Reason, ...]
    contributions: dict[str, float]  # log-odds of default, per original feature
    base_log_odds: float
    flags: tuple[str, ...] = ()
    flag_details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the result as a JSON-serialisable dict."""
        return {"pd": self.pd, "decision": self.decision, "band": self.band,
                "reasons": [r.to_dict() for r in self.reasons], "contributions": dict(self.contributions),
                "base_log_odds": self.base_log_odds, "flags": list(self.flags),
                "flag_details": dict(self.flag_details)}


def to_log_odds(attributions: Attributions, output_space: str) -> tuple[npt.NDArray[np.float64], float,
                                                                        npt.NDArray[np.float64]]:
    """Return (contributions in log-odds, base value in log-odds, PD) from an explainer's attributions."""
    if output_space == OUTPUT_LOG_ODDS:
        return attributions.values, float(attributions.base_value), expit(attributions.output)
    p = np.clip(attributions.output, _PD_CLIP, 1 - _PD_CLIP)
    b = float(np.clip(attributions.base_value, _PD_CLIP, 1 - _PD_CLIP))
    move = p - b
    # Where the output equals the base value, the secant is the logit's slope at that point.
    safe = np.abs(move) > 1e-12
    scale = np.where(safe, (logit(p) - logit(b)) / np.where(safe, move, 1.0), 1.0 / (b * (1 - b)))
    return attributions.values * scale[:, None], float(logit(b)), np.asarray(attributions.output, dtype=np.float64)


def in_log_odds(explanation: LocalExplanation) -> dict[str, Any]:
    """Return a local explanation's PD and its contributions and base value in log-odds of default."""
    attributions = Attributions(values=np.array([list(explanation.contributions.values())], dtype=np.float64),
                                base_value=explanation.base_value, output=np.array([explanation.output]))
    values, base, pds = to_log_odds(attributions, explanation.output_space)
    return {"pd": float(pds[0]), "base_log_odds": base,
            "contributions_log_odds": dict(zip(explanation.contributions, values[0].tolist(), strict=True))}


def material_reasons(contributions: Mapping[str, float], *, protected: Collection[str],
                     catalogue: Mapping[str, str] | None, policy: ScoringPolicy
                     ) -> tuple[tuple[Reason, ...], dict[str, float]]:
    """Return the material reasons (log-odds contributions in) and the protected pushes that were material.

    The total adverse push counts every positive contribution, protected ones included: it is
    the applicant's whole push toward default, whichever features carry it.
    """
    pushes = {f: float(v) for f, v in contributions.items() if math.isfinite(v) and v > 0}
    total = sum(pushes.values())
    floor = max(policy.materiality_share * total, policy.materiality_min_log_odds)
    material = sorted(((f, v) for f, v in pushes.items() if v >= floor and v > 0), key=lambda fv: (-fv[1], fv[0]))
    excluded = set(protected)
    texts = catalogue or {}
    listed = [(f, v) for f, v in material if f not in excluded][: policy.max_reasons]
    reasons = tuple(Reason(rank, f, v, v / total, texts.get(f) or default_reason_text(f))
                    for rank, (f, v) in enumerate(listed, start=1))
    return reasons, {f: v for f, v in material if f in excluded}


def _unseen(rows: pd.DataFrame, known: Mapping[str, Collection[Any]]) -> list[list[str]]:
    out: list[list[str]] = [[] for _ in range(len(rows))]
    for feature, categories in known.items():
        if feature not in rows.columns:
            continue
        column = rows[feature]
        odd = column.notna().to_numpy() & ~column.isin(list(categories)).to_numpy()
        for i in np.flatnonzero(odd):
            out[i].append(feature)
    return out


@dataclass(frozen=True)
class ScoredBatch:
    """Scores of many rows as arrays: what batch scoring writes without a Python object per row.

    ``reasons[i]`` holds feature positions in rank order, -1 after the last reason (adverse rows
    only); ``outweighing[i, j]`` marks a protected feature whose material push outweighs every
    listed reason of an adverse row.
    """

    features: tuple[str, ...]
    pd: npt.NDArray[np.float64]
    decision: npt.NDArray[np.object_]
    band: npt.NDArray[np.object_]
    contributions: npt.NDArray[np.float64]  # log-odds, rows x features
    base_log_odds: float
    reasons: npt.NDArray[np.int64]
    total_push: npt.NDArray[np.float64]
    outweighing: npt.NDArray[np.bool_]
    unseen: list[list[str]]

    def reason_list(self, i: int, catalogue: Mapping[str, str] | None = None) -> tuple[Reason, ...]:
        """Return row ``i``'s reasons with their texts."""
        texts = catalogue or {}
        out = []
        for rank, j in enumerate(self.reasons[i], start=1):
            if j < 0:
                break
            feature, value = self.features[j], float(self.contributions[i, j])
            out.append(Reason(rank, feature, value, value / float(self.total_push[i]),
                              texts.get(feature) or default_reason_text(feature)))
        return tuple(out)

    @cached_property
    def flagged(self) -> npt.NDArray[np.bool_]:
        """Return, per row, whether it has any flag."""
        return self.outweighing.any(axis=1) | np.array([bool(u) for u in self.unseen], dtype=bool)

    def flags(self, i: int) -> tuple[tuple[str, ...], dict[str, Any]]:
        """Return row ``i``'s flags and their details."""
        if not self.flagged[i]:
            return (), {}
        flags: list[str] = []
        details: dict[str, Any] = {}
        outweighing = sorted(self.features[j] for j in np.flatnonzero(self.outweighing[i]))
        if outweighing:
            flags.append(FLAG_PROTECTED_OUTWEIGHS)
            details[FLAG_PROTECTED_OUTWEIGHS] = outweighing
        if self.unseen[i]:
            flags.append(FLAG_UNSEEN_CATEGORY)
            details[FLAG_UNSEEN_CATEGORY] = sorted(self.unseen[i])
        return tuple(flags), details

    def applicant(self, i: int, catalogue: Mapping[str, str] | None = None) -> ScoredApplicant:
        """Return row ``i`` as one :class:`ScoredApplicant`."""
        flags, details = self.flags(i)
        return ScoredApplicant(pd=float(self.pd[i]), decision=str(self.decision[i]), band=str(self.band[i]),
                               reasons=self.reason_list(i, catalogue),
                               contributions=dict(zip(self.features, self.contributions[i].tolist(), strict=True)),
                               base_log_odds=self.base_log_odds, flags=flags, flag_details=details)


def score_matrix(explainer: ModelExplainer, rows: pd.DataFrame, *, policy: ScoringPolicy,
                 protected: Collection[str],
                 known_categories: Mapping[str, Collection[Any]] | None = None) -> ScoredBatch:
    """Score raw ``rows`` with one explainer pass into arrays (see :class:`ScoredBatch`).

    Reasons are given for adverse decisions (decline and refer) only, by the materiality rule of
    :func:`material_reasons`, vectorised. Raises ScoringError when the contributions do not add
    up to the model's output: reasons that do not explain the score must not reach an applicant.
    """
    if len(rows) == 0:
        raise ScoringError("there are no rows to score")
    attributions = explainer.explain(rows)
    values, base, pds = to_log_odds(attributions, explainer.fingerprint.output_space)
    raw_error = float(np.max(np.abs(attributions.values.sum(axis=1) + attributions.base_value - attributions.output)))
    if not raw_error <= ADDITIVITY_TOLERANCE:
        raise ScoringError(f"contributions differ from the model output by {raw_error:.3g}; not scoring with "
                           "reasons that do not explain the score")
    features = tuple(explainer.features)
    decision = np.full(len(pds), APPROVE, dtype=object)
    if policy.refer_from is not None:
        decision[pds >= policy.refer_from] = REFER
    decision[pds >= policy.cutoff] = DECLINE
    uppers = np.array([b.upper for b in policy.bands])
    band = np.array([b.name for b in policy.bands], dtype=object)[
        np.minimum(np.searchsorted(uppers, pds, side="right"), len(uppers) - 1)]
    pushes = np.where(np.isfinite(values) & (values > 0), values, 0.0)
    total = pushes.sum(axis=1)
    floor = np.maximum(policy.materiality_share * total, policy.materiality_min_log_odds)
    material = (pushes > 0) & (pushes >= floor[:, None]) & (decision != APPROVE)[:, None]
    is_protected = np.array([f in set(protected) for f in features])
    listable = np.where(material & ~is_protected, pushes, 0.0)
    # Rank by push, ties by feature name: a stable sort over columns taken in name order.
    by_name = np.argsort(np.array(features, dtype=object), kind="stable")
    ranked = by_name[np.argsort(-listable[:, by_name], axis=1, kind="stable")][:, : policy.max_reasons]
    reasons = np.where(np.take_along_axis(listable, ranked, axis=1) > 0, ranked, -1)
    top = np.where(reasons[:, 0] >= 0, np.take_along_axis(listable, np.maximum(reasons[:, :1], 0), axis=1)[:, 0], 0.0)
    outweighing = material & is_protected & (pushes > top[:, None])
    return ScoredBatch(features=features, pd=np.asarray(pds, dtype=np.float64), decision=decision, band=band,
                       contributions=values, base_log_odds=base, reasons=reasons.astype(np.int64), total_push=total,
                       outweighing=outweighing,
                       unseen=(explainer.encoder.unseen(rows) if explainer.encoder is not None
                               else _unseen(rows, known_categories or {})))


def score_rows(explainer: ModelExplainer, rows: pd.DataFrame, *, policy: ScoringPolicy,
               protected: Collection[str], catalogue: Mapping[str, str] | None = None,
               known_categories: Mapping[str, Collection[Any]] | None = None) -> list[ScoredApplicant]:
    """Score raw ``rows`` (see :func:`score_matrix`) into one :class:`ScoredApplicant` each."""
    batch = score_matrix(explainer, rows, policy=policy, protected=protected, known_categories=known_categories)
    return [batch.applicant(i, catalogue) for i in range(len(rows))]
