"""Is it the same person? The rule intake applies at upload, for one photo or a whole folder.

    same_person(embedding, accepted_embeddings, limits.same_person_distance)    # one new photo
    odd_ones_out([e1, e2, e3], limits.same_person_distance)  -> [2]             # a folder

A face is the same person as the others when the median distance from its embedding to theirs is
at most ``same_person_distance`` (0.6 for dlib's embeddings: the same person measured at most 0.28,
different people at least 0.64). The median, not the minimum, so that one look-alike photo among
the accepted ones does not let a stranger in.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from libs.imaging.faces import face_distance

Embedding = Sequence[float]


def same_person(embedding: Embedding, others: Sequence[Embedding], same_person_distance: float) -> bool:
    """True when ``embedding`` is the person of ``others`` (or there are no others yet)."""
    if not others:
        return True
    return statistics.median(face_distance(embedding, other) for other in others) <= same_person_distance


def odd_ones_out(embeddings: Sequence[Embedding], same_person_distance: float) -> list[int]:
    """Indexes of the faces that are not the person most of the others are, in the given order.

    The face closest to all the others (smallest median distance) is taken first, as if it had
    been uploaded first; every other face is then checked with :func:`same_person` against the
    faces accepted so far, as intake does upload after upload. Two faces of two people: the
    second one given is the odd one out."""
    if len(embeddings) < 2:
        return []
    typical = min(
        range(len(embeddings)),
        key=lambda i: statistics.median(
            face_distance(embeddings[i], other) for j, other in enumerate(embeddings) if j != i
        ),
    )
    accepted = [embeddings[typical]]
    odd = []
    for i, embedding in enumerate(embeddings):
        if i == typical:
            continue
        if same_person(embedding, accepted, same_person_distance):
            accepted.append(embedding)
        else:
            odd.append(i)
    return odd
