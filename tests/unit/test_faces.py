"""libs.imaging.faces: dlib's HOG detector and ResNet embeddings on real photos shipped in packages.

The second person is Grace Hopper from matplotlib's sample data (see test_imaging.py for why).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from libs.imaging.faces import FaceBox, detect_faces, face_distance, face_embedding, models_dir


def grey_to_rgb(image: np.ndarray) -> np.ndarray:
    return np.stack([image] * 3, axis=-1) if image.ndim == 2 else image


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skimage.data.astronaut()


@pytest.fixture(scope="module")
def grace_hopper() -> np.ndarray:
    from matplotlib import cbook

    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as image:
        return np.asarray(image.convert("RGB"))


def test_one_face_in_the_astronaut_portrait(astronaut: np.ndarray) -> None:
    faces = detect_faces(astronaut)
    assert len(faces) == 1
    face = faces[0]
    assert isinstance(face, FaceBox) and face.score > 0.4
    assert abs(face.x - 177) < 15 and abs(face.y - 70) < 15 and 80 < face.w < 110


@pytest.mark.parametrize("name", ["camera", "chelsea", "coffee", "rocket"])
def test_no_face_in_photos_without_people(name: str) -> None:
    assert detect_faces(grey_to_rgb(getattr(skimage.data, name)())) == []


def test_faces_are_sorted_best_first(astronaut: np.ndarray) -> None:
    dimmer = (astronaut * 0.6).astype(np.uint8)
    faces = detect_faces(np.concatenate([dimmer, astronaut], axis=1))
    assert len(faces) == 2
    assert faces[0].score >= faces[1].score


def test_boxes_of_a_large_image_are_in_its_own_pixels(astronaut: np.ndarray) -> None:
    # 2048 px is analysed at 1024 px; the box must come back scaled to the 2048 px image.
    big = np.asarray(Image.fromarray(astronaut).resize((2048, 2048), Image.Resampling.LANCZOS))
    (small_face,) = detect_faces(astronaut)
    (big_face,) = detect_faces(big)
    assert abs(big_face.x - 4 * small_face.x) < 30 and abs(big_face.w - 4 * small_face.w) < 40


def test_rejects_what_is_not_an_rgb_uint8_image(astronaut: np.ndarray) -> None:
    with pytest.raises(ValueError):
        detect_faces(astronaut.astype(np.float32))
    with pytest.raises(ValueError):
        detect_faces(astronaut[:, :, :2])


def test_embeddings_tell_people_apart(astronaut: np.ndarray, grace_hopper: np.ndarray) -> None:
    astro = face_embedding(astronaut, detect_faces(astronaut)[0])
    mirrored_photo = np.ascontiguousarray(astronaut[:, ::-1])
    mirrored = face_embedding(mirrored_photo, detect_faces(mirrored_photo)[0])
    grace = face_embedding(grace_hopper, detect_faces(grace_hopper)[0])
    assert len(astro) == 128 and all(isinstance(v, float) for v in astro)
    assert face_distance(astro, mirrored) < 0.4  # measured 0.19
    assert face_distance(astro, grace) > 0.6  # measured 0.70
    assert face_distance(astro, astro) == 0.0


def test_face_distance_is_euclidean() -> None:
    assert face_distance([0.0, 3.0], [4.0, 0.0]) == 5.0
    with pytest.raises(ValueError):
        face_distance([0.0], [0.0, 1.0])


def test_models_are_the_5_point_and_resnet_files() -> None:
    assert (models_dir() / "shape_predictor_5_face_landmarks.dat").is_file()
    assert (models_dir() / "dlib_face_recognition_resnet_model_v1.dat").is_file()


def test_nothing_is_loaded_at_import() -> None:
    code = (
        "import sys, libs.imaging, libs.imaging.faces as f;"
        "assert f._detector is None and f._embedder is None;"
        "assert 'dlib' not in sys.modules and 'pillow_heif' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


RACE = """
import threading
from skimage import data
from libs.imaging import detect_faces, face_embedding
img = data.astronaut()
done = []
def work():
    done.append(len(face_embedding(img, detect_faces(img)[0])))
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(done)
"""


def test_concurrent_checks_from_many_threads_do_not_crash_the_process():
    """dlib's models are not safe for concurrent use (a segfault took the whole server down when two
    photos were uploaded at once); several fresh processes each race eight threads from the start."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for _ in range(4):
        proc = subprocess.run(
            [sys.executable, "-c", RACE], cwd=root, capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-500:]}"
        assert proc.stdout.strip() == str([128] * 8)
