"""The studio engine's cut-out: the person's alpha matte, and their colours with the old background
taken out of the edge, so that hair and shoulders blend into any new backdrop.

    alpha, colours = cut_out(rgb, face)      # HxW float32 in [0, 1], HxWx3 uint8
    layer = np.dstack([colours, alpha * 255])

1. **Segment** (:func:`segment`): OpenCV GrabCut on a small copy, seeded with a head-and-shoulders
   silhouette around the face box (the crown of the head above it surely person), then cleaned up
   (kept what touches the face, filled enclosed holes and the rows below the chin). A yes/no
   answer, coarse at the edge: at 256 px a strand of hair is a fraction of a pixel. GrabCut only
   sees colours: when its colour models take most of the crown for background (hair against a wall
   of the same colours), colour cannot place the hair's outline, and above the chin the answer is
   where a portrait puts a head (:func:`_head`, scaled to the face) instead; the edge there is
   that outline, feathered.
2. **Refine the edge** at full size: a band around the coarse outline is unknown, sure person inside,
   sure background outside. In the band each pixel is modelled as a mix of the nearby person colour
   ``F`` and the nearby background colour ``B`` (local averages of the sure regions): its alpha is
   where its colour falls between the two, ``((I - B)·(F - B)) / |F - B|²``. Where person and
   background look alike that ratio means nothing, and the coarse outline (feathered) is kept.
3. **Decontaminate the colours**: a pixel that is 40 % hair and 60 % yellow wall must not bring
   60 % of the wall onto a navy backdrop. Its person colour is solved from the mix,
   ``(I - (1 - alpha) B) / alpha``, leaning on the local person colour ``F`` as alpha gets small.
"""

from __future__ import annotations

import cv2
import numpy as np

from services.generation.engines.framing import Box

WORK_SIDE = 256  # GrabCut runs on a copy this big: its cost grows fast with pixels; the edge is refined after
GRABCUT_ITERATIONS = 3
BAND = 1.5  # in working pixels (3 px on a 512 px photo): inside by this much is surely person...
OUTER = 5  # ...and outside by this many BANDs surely background: room for loose hair
MIN_CONTRAST = 24.0  # |F - B| in RGB levels below which a pixel's mix cannot be read
COLOUR_SIGMA = 3.0  # working pixels: how local the person and background colours are
# How much of the old background is taken out of edge pixels. All of it (1.0) trusts each pixel's
# alpha fully, and an alpha a little off then shows as a dark or light speck; none (0.0) leaves the
# old wall in every part-covered pixel. Measured on hair strands over a wall (test_studio_engine.py).
DECONTAMINATE = 0.5
# Share of the crown (surely person, mostly hair) that GrabCut's colour models must find likelier
# background before the head's outline is taken from where a portrait puts it instead. Measured on the
# astronaut: 0-7 % on a grey wall, a rocket, coffee and a light wall; 60-66 % on walls painted in her
# own hair colours (test_studio_engine.py).
HAIR_LOOKS_LIKE_WALL = 0.3


def cut_out(rgb: np.ndarray, face: Box) -> tuple[np.ndarray, np.ndarray]:
    """The person's alpha (HxW float32, 0-1) and their colours (HxWx3 uint8), old background removed."""
    height, width = rgb.shape[:2]
    scale = min(1.0, WORK_SIDE / max(height, width))
    small = cv2.resize(rgb, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
    person, colour_tells = segment(small, Box(face.x * scale, face.y * scale, face.w * scale, face.h * scale))

    # 2. The trimap, at full size: sure person, sure background, and the band between them.
    coarse = cv2.resize(person.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    inside = (coarse > 0.5).astype(np.uint8)
    radius = max(1, round(BAND / scale))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    sure_fg = cv2.erode(inside, disc).astype(bool)
    sure_bg = ~cv2.dilate(
        inside, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * OUTER * radius + 1,) * 2)
    ).astype(bool)
    band = ~(sure_fg | sure_bg)

    # Local person and background colours, from the sure regions only (smooth: made on the small copy).
    small_size = (small.shape[1], small.shape[0])
    fg_small = cv2.resize(sure_fg.astype(np.float32), small_size, interpolation=cv2.INTER_AREA)
    bg_small = cv2.resize(sure_bg.astype(np.float32), small_size, interpolation=cv2.INTER_AREA)
    f = _upsample(_local_mean(small, fg_small), (width, height))
    b = _upsample(_local_mean(small, bg_small), (width, height))

    image = rgb.astype(np.float32)
    d = f - b
    contrast = np.einsum("...c,...c->...", d, d)
    mix = np.einsum("...c,...c->...", image - b, d) / np.maximum(contrast, 1e-6)
    feathered = cv2.GaussianBlur(coarse, (0, 0), max(1.0, 0.8 / scale))
    readable = contrast > MIN_CONTRAST**2
    if not colour_tells:  # hair and wall alike: their mix cannot be read either, above the chin
        readable[: max(0, round(face.y + face.h))] = False
    alpha = np.where(readable, np.clip(mix, 0.0, 1.0), feathered).astype(np.float32)
    alpha[sure_fg], alpha[sure_bg] = 1.0, 0.0

    # 3. Colours: solved from the mix where alpha says enough, the local person colour elsewhere.
    solved = b + (image - b) / np.maximum(alpha, 0.05)[..., None]
    trust = np.clip((alpha - 0.15) / 0.5, 0.0, 1.0)[..., None]
    edge = trust * solved + (1.0 - trust) * f
    edge = DECONTAMINATE * edge + (1 - DECONTAMINATE) * image
    colours = np.where(band[..., None], edge, np.where(sure_fg[..., None], image, f))
    return alpha, np.clip(np.round(colours), 0, 255).astype(np.uint8)


def person_matte(rgb: np.ndarray, face: Box) -> np.ndarray:
    """Alpha (HxW float32 in [0, 1]) of the person."""
    return cut_out(rgb, face)[0]


def segment(small: np.ndarray, face: Box) -> tuple[np.ndarray, bool]:
    """1 where GrabCut (seeded by a portrait silhouette around ``face``) finds the person, else 0;
    and whether colour told hair from wall (if not, the head above the chin is :func:`_head`)."""
    mask = _silhouette_seed(small.shape[:2], face)
    bgd_model, fgd_model = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    # GrabCut starts its colour models with k-means on OpenCV's (per-thread, ever-advancing) random
    # generator: reset it, or the same photo gives a slightly different matte on every render.
    cv2.setRNGSeed(0)
    cv2.grabCut(
        cv2.cvtColor(small, cv2.COLOR_RGB2BGR),
        mask,
        (0, 0, 0, 0),  # no rectangle: the mask above is the whole initialisation
        bgd_model,
        fgd_model,
        GRABCUT_ITERATIONS,
        cv2.GC_INIT_WITH_MASK,
    )
    person: np.ndarray = np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
    colour_tells = not _hair_looks_like_wall(small, face, fgd_model, bgd_model)
    if not colour_tells:
        # GrabCut's answer around the head is then a guess between two models of the same colours
        # (it usually gives the hair to the wall): the portrait prior is the better guess.
        head = np.zeros(person.shape, bool)
        head[: max(0, round(face.y + face.h))] = True
        head &= (mask != cv2.GC_FGD) & (mask != cv2.GC_BGD)
        person[head] = _head(person.shape, face)[head]

    # Keep only what is connected to the face: GrabCut may claim a stray patch of similar colour.
    _, labels = cv2.connectedComponents(person)
    fx, fy = (round(v) for v in face.centre)
    face_label = labels[min(fy, labels.shape[0] - 1), min(fx, labels.shape[1] - 1)]
    if face_label:
        person = (labels == face_label).astype(np.uint8)
    # Background enclosed by the person (the inside of a collar, a shadow under the chin) is
    # person: the backdrop must not show through. Real background reaches an edge of the photo.
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    person = cv2.morphologyEx(person, cv2.MORPH_CLOSE, kernel)
    _, holes = cv2.connectedComponents(1 - person)
    edge_labels = np.unique(np.concatenate([holes[0], holes[-1], holes[:, 0], holes[:, -1]]))
    person[~np.isin(holes, edge_labels)] = 1
    # Below the chin a headshot is solid from shoulder to shoulder: fill each row between the
    # person's outermost pixels (grey collar linings and shirt folds otherwise leak to the edge).
    chin = min(person.shape[0], round(face.y + face.h * 1.1))
    rows: np.ndarray = person[chin:]
    filled = np.asarray(rows.any(axis=1))
    first = rows.argmax(axis=1)
    last = rows.shape[1] - 1 - rows[:, ::-1].argmax(axis=1)
    cols = np.arange(rows.shape[1])[None, :]
    rows[filled[:, None] & (cols >= first[:, None]) & (cols <= last[:, None])] = 1
    return person, colour_tells


def _silhouette_seed(shape: tuple[int, int], face: Box) -> np.ndarray:
    """GrabCut's starting labels: where a head-and-shoulders portrait puts the person."""
    height, width = shape
    mask = np.full((height, width), cv2.GC_PR_BGD, np.uint8)
    cx = face.x + face.w / 2
    chin = face.y + face.h

    def fill(x0: float, y0: float, x1: float, y1: float, label: int) -> None:
        mask[max(0, round(y0)) : max(0, round(y1)), max(0, round(x0)) : max(0, round(x1))] = label

    # Probably person: the head with hair, and shoulders widening below the chin down to the bottom.
    fill(
        face.x - 0.35 * face.w,
        face.y - 0.6 * face.h,
        face.x + 1.35 * face.w,
        chin + 0.3 * face.h,
        cv2.GC_PR_FGD,
    )
    rows = np.arange(height)[:, None]
    cols = np.arange(width)[None, :]
    below = np.clip((rows - chin) / max(face.h, 1.0), 0.0, None)
    half_width = face.w * (0.6 + 0.9 * np.minimum(below, 1.6))
    mask[(rows > chin) & (np.abs(cols - cx) < half_width)] = cv2.GC_PR_FGD
    # Surely person: the middle of the face, the neck under it and the crown above it (hair, a bald
    # head or a hat: person whatever it is). The crown keeps the hair's colours in the person's
    # model even when the wall behind has the same colours.
    fill(face.x + 0.2 * face.w, face.y + 0.15 * face.h, face.x + 0.8 * face.w, chin, cv2.GC_FGD)
    fill(cx - 0.2 * face.w, chin, cx + 0.2 * face.w, chin + 0.4 * face.h, cv2.GC_FGD)
    mask[_crown(face, shape)] = cv2.GC_FGD
    # Surely background: a thin band at the top and sides (the bottom edge cuts through the person).
    band = max(2, round(0.02 * max(height, width)))
    for region in (mask[:band, :], mask[:, :band], mask[:, -band:]):
        region[region != cv2.GC_FGD] = cv2.GC_BGD
    return mask


def _crown(face: Box, shape: tuple[int, int]) -> tuple[slice, slice]:
    """The top of the head, just above the face box (dlib's box starts at the brows)."""
    top, bottom = max(0, round(face.y - 0.3 * face.h)), max(0, round(face.y + 0.15 * face.h))
    left, right = max(0, round(face.x + 0.15 * face.w)), max(0, round(face.x + 0.85 * face.w))
    return slice(min(top, shape[0]), min(bottom, shape[0])), slice(min(left, shape[1]), min(right, shape[1]))


def _head(shape: tuple[int, int], face: Box) -> np.ndarray:
    """Where a portrait puts the head with its hair (HxW bool), scaled to the face box: up to 0.65
    face heights above the box and 0.85 face widths either side of its centre (an ellipse down to
    the cheekbones), then narrowing to 0.55 face widths at the chin. What colour cannot tell,
    this guesses: a generic head, not this person's hairstyle."""
    height, width = shape
    rows = np.arange(height, dtype=np.float32)[:, None]
    cols = np.arange(width, dtype=np.float32)[None, :]
    top, widest, chin, reach = face.y - 0.65 * face.h, face.y + 0.35 * face.h, face.y + face.h, 0.85 * face.w
    crown = reach * np.sqrt(np.clip(1 - ((widest - rows) / (widest - top)) ** 2, 0.0, 1.0))
    jaw = reach + (0.55 * face.w - reach) * np.clip((rows - widest) / (chin - widest), 0.0, 1.0)
    half_width = np.where(rows < widest, crown, jaw)
    head: np.ndarray = (np.abs(cols - (face.x + face.w / 2)) < half_width) & (rows >= top) & (rows < chin)
    return head


def _hair_looks_like_wall(small: np.ndarray, face: Box, fgd_model: np.ndarray, bgd_model: np.ndarray) -> bool:
    """Whether GrabCut's colour models find most of the crown (surely person) likelier background."""
    crown = small[_crown(face, small.shape[:2])].reshape(-1, 3)
    if not len(crown):
        return False
    wall_like = _log_likelihood(crown, bgd_model) > _log_likelihood(crown, fgd_model)
    return float(wall_like.mean()) > HAIR_LOOKS_LIKE_WALL


def _log_likelihood(rgb: np.ndarray, model: np.ndarray) -> np.ndarray:
    """The log-likelihood of each colour (Nx3 RGB) under one of GrabCut's colour models: 5 Gaussians
    over BGR, stored as OpenCV lays them out (5 weights, then 5 means, then 5 covariances)."""
    weights, means, covariances = model[0, :5], model[0, 5:20].reshape(5, 3), model[0, 20:].reshape(5, 3, 3)
    bgr = rgb[:, ::-1].astype(np.float64)
    density = np.zeros(len(bgr))
    for weight, mean, covariance in zip(weights, means, covariances, strict=True):
        if weight <= 0:
            continue
        covariance = covariance + np.eye(3) * 1e-2  # a flat component (OpenCV adds 0.01 to those too)
        offset = bgr - mean
        distance = np.einsum("ij,jk,ik->i", offset, np.linalg.inv(covariance), offset)
        density += weight * np.exp(-0.5 * distance) / np.sqrt((2 * np.pi) ** 3 * np.linalg.det(covariance))
    log_density: np.ndarray = np.log(np.maximum(density, 1e-300))
    return log_density


def _local_mean(small: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """The weighted local mean colour (HxWx3 float32) of ``small``, reaching further out where the
    weighted region is far away (a person's colour at the edge of the photo, say). Each reach is a
    blur of ``COLOUR_SIGMA`` on a copy 4x smaller than the last: cheap however far it reaches."""
    image = small.astype(np.float32)
    size = (image.shape[1], image.shape[0])
    result = np.zeros_like(image)
    missing = np.ones(weight.shape, bool)
    num, den = image * weight[..., None], weight
    for level in range(3):
        if level:
            smaller = (max(1, num.shape[1] // 4), max(1, num.shape[0] // 4))
            num = cv2.resize(num, smaller, interpolation=cv2.INTER_AREA)
            den = cv2.resize(den, smaller, interpolation=cv2.INTER_AREA)
        blurred_num = cv2.resize(
            cv2.GaussianBlur(num, (0, 0), COLOUR_SIGMA), size, interpolation=cv2.INTER_LINEAR
        )
        blurred_den = cv2.resize(
            cv2.GaussianBlur(den, (0, 0), COLOUR_SIGMA), size, interpolation=cv2.INTER_LINEAR
        )
        found = missing & (blurred_den > 1e-3)
        result[found] = blurred_num[found] / blurred_den[found][:, None]
        missing &= ~found
    if missing.any():
        total = float(weight.sum())
        mean = (image * weight[..., None]).reshape(-1, 3).sum(0) / total if total else image.mean((0, 1))
        result[missing] = mean
    return result


def _upsample(field: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    out: np.ndarray = cv2.resize(field, size, interpolation=cv2.INTER_LINEAR)
    return out


__all__ = ["cut_out", "person_matte", "segment"]
