"""Real portraits that ship inside installed packages (no download), as files for the commands.

- skimage.data.astronaut(): Eileen Collins, 512 x 512;
- matplotlib's sample_data/grace_hopper.jpg: Grace Hopper, 512 x 600, a different person
  (face distance ~0.70 to the astronaut, above the 0.6 same-person limit).
"""

from __future__ import annotations

from pathlib import Path

import skimage.data
from matplotlib import cbook
from PIL import Image


def astronaut_file(folder: Path, name: str = "astronaut.png") -> Path:
    path = folder / name
    Image.fromarray(skimage.data.astronaut()).save(path)
    return path


def grace_hopper_file(folder: Path, name: str = "grace_hopper.jpg") -> Path:
    path = folder / name
    path.write_bytes(Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).read_bytes())
    return path
