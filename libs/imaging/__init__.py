"""Photo checks and transforms shared by intake (at upload) and preprocess.

Usage::

    from libs.imaging import PhotoLimits, PhotoRejected, check_photo

    limits = PhotoLimits.from_settings(settings)
    try:
        checked = check_photo(data, limits, others=session_embeddings)
    except PhotoRejected as refused:        # .code, .message, .http_status
        ...
    checked.clean_jpeg, checked.face, checked.embedding

    rgb = load_rgb(checked.clean_jpeg)      # pixels, upright
    crop = crop_face(rgb, detect_faces(rgb)[0], size=512)

    from libs.imaging.prepare import prepare_photo      # preprocess: aligned crops and scores
    prepared = prepare_photo(original_bytes, training_side=512)

The rules are listed in libs/imaging/checks.py and docs/photo-checks.md. Nothing heavy happens at
import: dlib's detector and models load on first use.
"""

from libs.imaging.checks import CheckedPhoto, check_photo
from libs.imaging.decode import load_rgb, sniff_format
from libs.imaging.errors import REASONS, PhotoRejected
from libs.imaging.faces import FaceBox, detect_faces, face_distance, face_embedding
from libs.imaging.identity import odd_ones_out, same_person
from libs.imaging.limits import PhotoLimits
from libs.imaging.transforms import crop_face, encode_jpeg, resize_long_side

__all__ = [
    "REASONS",
    "CheckedPhoto",
    "FaceBox",
    "PhotoLimits",
    "PhotoRejected",
    "check_photo",
    "crop_face",
    "detect_faces",
    "encode_jpeg",
    "face_distance",
    "face_embedding",
    "load_rgb",
    "odd_ones_out",
    "resize_long_side",
    "same_person",
    "sniff_format",
]
