"""CVSS base scores computed from vectors, never taken from a label.

OSV ``severity`` entries carry a type (``CVSS_V2``, ``CVSS_V3``, ``CVSS_V4``) and a
vector. v3.x and v4.0 are preferred; v2 counts only when no newer vector exists
anywhere in a merged finding (DESIGN §5).
"""

from __future__ import annotations

from dataclasses import dataclass

from cvss import CVSS2, CVSS3, CVSS4
from cvss.exceptions import CVSSError

#: Newer vectors win over v2 regardless of score.
MODERN = ("CVSS_V3", "CVSS_V4")
LEGACY = ("CVSS_V2",)

_CLASSES = {"CVSS_V2": CVSS2, "CVSS_V3": CVSS3, "CVSS_V4": CVSS4}


@dataclass(frozen=True)
class Score:
    score: float
    vector: str
    type: str  # CVSS_V2 | CVSS_V3 | CVSS_V4
    source: str  # the advisory ID the vector came from


def base_score(kind: str, vector: str) -> float | None:
    """The base score of one vector, or None if the type is unknown or the vector invalid."""
    cls = _CLASSES.get(kind)
    if cls is None or not isinstance(vector, str):
        return None
    try:
        return round(float(cls(vector.strip()).base_score), 1)
    except (CVSSError, ValueError, KeyError, IndexError, TypeError):
        return None


def best(scores: list[Score]) -> Score | None:
    """The deciding score: highest v3/v4 score, or highest v2 if there is nothing newer.

    Ties go to the lowest advisory ID, then the newer CVSS version, so the choice is stable.
    """
    modern = [s for s in scores if s.type in MODERN]
    pool = modern or [s for s in scores if s.type in LEGACY]
    if not pool:
        return None
    return min(pool, key=lambda s: (-s.score, s.source, -_CLASSES_ORDER[s.type], s.vector))


_CLASSES_ORDER = {"CVSS_V2": 2, "CVSS_V3": 3, "CVSS_V4": 4}


def label(score: float) -> str:
    """A qualitative label for a score, in the vocabulary OSV databases use."""
    if score >= 9.0:
        return "CRITICAL"
    if score >= 7.0:
        return "HIGH"
    if score >= 4.0:
        return "MODERATE"
    if score > 0.0:
        return "LOW"
    return "NONE"
