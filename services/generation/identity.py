"""One person per render: the identity check intake makes at upload, applied to a folder of photos.

    different_people([a.jpg, b.jpg, c.jpg], 0.6)
    -> "c.jpg looks like a different person from a.jpg, b.jpg (face distance 0.71, the limit is 0.60)"

Photos in which no single face is found are left out of the comparison: the engine picks the photo
whose face it is surest of, and says so itself when no photo has a face.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

from libs.imaging import PhotoRejected, detect_faces, face_distance, face_embedding, load_rgb, odd_ones_out


def different_people(photos: Sequence[Path], same_person_distance: float) -> str | None:
    """None when the photos show one person; otherwise a sentence naming the odd photo(s) out."""
    faces: list[tuple[Path, tuple[float, ...]]] = []
    for photo in photos:
        try:
            rgb = load_rgb(Path(photo).read_bytes())
        except PhotoRejected:
            continue
        found = detect_faces(rgb)
        if len(found) == 1:
            faces.append((Path(photo), face_embedding(rgb, found[0])))
    odd = set(odd_ones_out([e for _, e in faces], same_person_distance))
    if not odd:
        return None
    person = [(p, e) for i, (p, e) in enumerate(faces) if i not in odd]
    lines = []
    for i in sorted(odd):
        path, embedding = faces[i]
        distance = statistics.median(face_distance(embedding, e) for _, e in person)
        lines.append(
            f"{path.name} looks like a different person from {', '.join(p.name for p, _ in person)} "
            f"(face distance {distance:.2f}, the limit is {same_person_distance:.2f})"
        )
    return "; ".join(lines)
