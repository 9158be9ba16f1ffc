"""Which prepared photos train the person model: the best N, no blurry ones, no same shot twice.

A pure function of what preparation measured, so a resumed or repeated session decides the same::

    verdicts = choose(candidates, keep_best=15, min_sharpness=0.25)
    kept_ids = [v.photo_id for v in verdicts if v.kept]      # best first
    verdicts[0].reason                                       # "kept: sharpness 0.82, face 34% of frame"

Candidates are taken best score first (ties: the earlier photo). Each one is, in this order:
dropped as too blurry, dropped as a near-duplicate of a photo already kept (so of every same-shot
pair the better one stays), dropped for lack of room once ``keep_best`` are kept, or kept.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from libs.imaging.quality import PhotoQuality, near_duplicates

# Why a photo was dropped, as a code (counted for the session's failure message).
MISSING = "missing"  # the original is not in the blob store
UNREADABLE = "unreadable"  # damaged, or not an image we can open
NO_FACE = "no_face"
BLURRY = "blurry"
DUPLICATE = "duplicate"
SURPLUS = "surplus"


@dataclass(frozen=True)
class Candidate:
    photo_id: str
    number: int  # 1-based position among the session's photos, as the person sees them
    quality: PhotoQuality
    embedding: Sequence[float]
    phash: str


@dataclass(frozen=True)
class Verdict:
    photo_id: str
    kept: bool
    reason: str
    problem: str | None = None  # one of the codes above when dropped


def choose(candidates: Iterable[Candidate], *, keep_best: int, min_sharpness: float) -> list[Verdict]:
    """One verdict per candidate, best first (see the module's docstring)."""
    ranked = sorted(candidates, key=lambda c: (-c.quality.score, c.number))
    kept: list[Candidate] = []
    verdicts = []
    for c in ranked:
        twin = next((k for k in kept if near_duplicates(c.embedding, c.phash, k.embedding, k.phash)), None)
        if c.quality.sharpness < min_sharpness:
            verdicts.append(
                Verdict(c.photo_id, False, f"too blurry (sharpness {c.quality.sharpness:.2f})", BLURRY)
            )
        elif twin is not None:
            verdicts.append(Verdict(c.photo_id, False, f"near-duplicate of photo {twin.number}", DUPLICATE))
        elif len(kept) >= keep_best:
            reason = f"not among the best {keep_best} (score {c.quality.score:.2f})"
            verdicts.append(Verdict(c.photo_id, False, reason, SURPLUS))
        else:
            kept.append(c)
            verdicts.append(Verdict(c.photo_id, True, f"kept: {c.quality.summary()}"))
    return verdicts


def failure_reason(problems: Sequence[str | None], *, usable: int, needed: int) -> str:
    """What the person reads when too few photos are usable: what went wrong and what to do.

    ``problems``: one code per photo of the session (None for a usable one).
    """
    total = len(problems)
    if total == 0:
        return "This session has no photos. Please upload a few photos of yourself and submit again."
    counts = Counter(p for p in problems if p is not None)
    if usable == 0 and len(counts) == 1:
        only = next(iter(counts))
        if only == BLURRY:
            return "All your photos are blurry. Please upload sharper ones."
        if only == NO_FACE:
            return (
                "We could not find your face in your photos. Please upload photos where your face "
                "is clearly visible, looking at the camera."
            )
        if only in (MISSING, UNREADABLE):
            return "We could not read your photos. Please upload them again."
    details = ", ".join(_describe(code, n) for code, n in counts.most_common())
    return (
        f"Only {usable} of your {total} photos can be used and at least {needed} are needed "
        f"({details}). Please upload more photos of yourself: sharp, well lit, one face, looking at the camera."
    )


def _describe(code: str, n: int) -> str:
    plural = n != 1
    return {
        MISSING: f"{n} could not be found",
        UNREADABLE: f"{n} could not be read",
        NO_FACE: f"{n} show{'' if plural else 's'} no face we can find",
        BLURRY: f"{n} {'are' if plural else 'is'} blurry",
        DUPLICATE: f"{n} {'are' if plural else 'is a'} near-duplicate{'s' if plural else ''}",
        SURPLUS: f"{n} {'were' if plural else 'was'} not needed",
    }.get(code, f"{n} other")
