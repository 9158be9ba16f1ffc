"""Photo preparation worker: from an approved session to training-ready photos.

Consumes ``session.approved``; for each photo of the session it decodes the stored original (HEIC
too), applies the EXIF orientation, drops the metadata, finds and aligns the face, cuts a
head-and-shoulders crop (at most 1024 px) and a training square (LORA_RESOLUTION), scores it and
records its verdict; then publishes ``photos.processed`` with the kept photos, best first. See
docs/preprocess.md.
"""
