"""Photo checks and transforms shared by intake (at upload) and preprocess."""

from libs.imaging.faces import FaceBox, detect_faces

__all__ = ["FaceBox", "detect_faces"]
