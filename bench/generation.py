"""Benchmark of the generation engines: what our code costs on top of diffusers, and what batching buys.

Measured side by side in one run (this machine is noisy), each figure the median of ``--repeats``
interleaved runs:

1. **engine overhead**: rendering a plan through ``DiffusionEngine.render`` (one by one) against raw
   diffusers pipeline calls doing the same shots (same prompts, seeds, steps, LoRA) on the same
   pipeline object. Ratio engine / raw; the images are also checked to be identical.
2. **batching**: the same plan through the engine with ``BATCH_SIZE=--batch`` against ``BATCH_SIZE=1``.
   Ratio one-by-one time / batched time (above 1: batching helps).
3. **studio**: images per second of the studio engine at the format's real size (segmentation included).
4. **worker**: the generation worker (``photos.processed`` to ``completed``: rows, blobs, events per
   image) against the studio engine alone for the same plan (bench/support/generation_worker.py),
   paired runs and in-run (the engine's calls timed inside each run: the steady figure). Target ≤ 1.05x.
5. **embedded session**: a default-package session in the embedded mode (every service in one process,
   studio engine), from the submit request to ``completed``, with the time per stage
   (bench/support/embedded_session.py). Target: under a minute.

By default a tiny random-weight pipeline is built in a temporary folder (CPU, about a minute). On a GPU
box point ``--model-dir`` at a real model to get real images per second::

    python bench/generation.py                                   # tiny model, CPU
    python bench/generation.py --model-dir /models/sd15 --size 512x640 --steps 30 --batch 4

Prints the figures and writes them to bench/results/generation.json.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never download anything, whatever the model folder says

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: `python bench/generation.py`

import numpy as np  # noqa: E402
import skimage.data  # noqa: E402
from PIL import Image  # noqa: E402

from bench.support.embedded_session import bench_embedded_session  # noqa: E402
from bench.support.embedded_session import describe as describe_embedded  # noqa: E402
from bench.support.generation_worker import bench_worker, describe  # noqa: E402
from bench.support.results import write_results  # noqa: E402
from libs.catalog import default_catalog  # noqa: E402
from libs.settings import Settings  # noqa: E402
from services.generation.engines import PersonAttributes, make_engine  # noqa: E402
from services.generation.engines.prompts import negative_prompt, render_prompt  # noqa: E402
from services.generation.plan import ShotPlan, plan_shots  # noqa: E402

ATTRS = PersonAttributes("female", "brown", glasses=False)
RESULTS = ROOT / "bench" / "results" / "generation.json"


def median_time(run: Callable[[], Any]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def interleaved(runs: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Median seconds of each run, alternating them so drifting machine load hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            times[name].append(median_time(run))
    return {name: statistics.median(values) for name, values in times.items()}


def make_plan(shots: int, size: tuple[int, int] | None) -> ShotPlan:
    """A real executive plan (portrait), cut to ``shots`` shots."""
    catalog = default_catalog()
    plan = plan_shots(
        catalog,
        package_id="executive",
        format_id="portrait",
        styles=[s.id for s in catalog.all_styles()[:8]],
        session_key="bench",
        size=size,
    )
    return ShotPlan(
        plan.session_key,
        plan.package_id,
        plan.format_id,
        plan.width,
        plan.height,
        plan.styles,
        plan.shots[:shots],
    )


def raw_render(engine: Any, model: Any, plan: ShotPlan) -> list[Image.Image]:
    """The same shots as ``engine.render`` with BATCH_SIZE 1, calling diffusers directly."""
    import torch

    pipe, settings = engine.pipeline, engine.settings
    pipe.load_lora_weights(str(model.path.parent), weight_name=model.path.name, adapter_name="person")
    try:
        width, height = (side // 8 * 8 for side in plan.size)
        return [
            pipe(
                prompt=[render_prompt(model.trigger, ATTRS, shot.style)],
                negative_prompt=[negative_prompt(ATTRS)],
                num_inference_steps=settings.INFERENCE_STEPS,
                guidance_scale=settings.GUIDANCE_SCALE,
                width=width,
                height=height,
                generator=[torch.Generator("cpu").manual_seed(shot.seed)],
            ).images[0]
            for shot in plan.shots
        ]
    finally:
        pipe.unload_lora_weights()


def bench_diffusion(args: argparse.Namespace, photo: Path, work: Path) -> dict[str, Any]:
    if args.model_dir:
        model_dir, model_name = args.model_dir, Path(args.model_dir).name
    else:
        from services.generation.engines.diffusion.tiny import build_tiny_pipeline

        model_dir, model_name = str(build_tiny_pipeline(work / "tiny-sd")), "tiny random SD (built in code)"
    settings = Settings(
        VAR_DIR=str(work / "var"),
        ENGINE="diffusion",
        MODEL_DIR=model_dir,
        DEVICE=args.device,
        INFERENCE_STEPS=args.steps,
        BATCH_SIZE=1,
        LORA_STEPS=args.lora_steps,
        LORA_RESOLUTION=args.lora_resolution,
    )
    engine: Any = make_engine(settings)  # a DiffusionEngine: its pipeline also serves the raw runs
    plan = make_plan(args.shots, args.size)

    def render(batch_size: int) -> list[Image.Image]:
        # One pipeline for every run (a real SDXL twice would not fit many GPUs): only the batch
        # size changes between the one-by-one and the batched runs.
        engine.settings = settings.replace(BATCH_SIZE=batch_size)
        return [h.image for h in engine.render(model, plan, ATTRS)]

    start = time.perf_counter()
    model = engine.prepare("bench", [photo], ATTRS)
    preparing = time.perf_counter() - start

    # Warm-up (first calls allocate and pick kernels), and the identity check.
    ours = render(1)
    theirs = raw_render(engine, model, plan)
    identical = all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(ours, theirs, strict=True))
    render(args.batch)

    times = interleaved(
        {
            "raw": lambda: raw_render(engine, model, plan),
            "engine": lambda: render(1),
            "batched": lambda: render(args.batch),
        },
        args.repeats,
    )
    engine.delete(model)
    return {
        "model": model_name,
        "device": str(engine.device),
        "dtype": str(engine.dtype).replace("torch.", ""),
        "size": list(plan.size),
        "steps": settings.INFERENCE_STEPS,
        "shots": len(plan),
        "batch_size": args.batch,
        "lora_steps": settings.LORA_STEPS,
        "prepare_seconds": round(preparing, 3),  # face crops + LoRA training + saving
        "raw_seconds": round(times["raw"], 4),
        "engine_seconds": round(times["engine"], 4),
        "batched_seconds": round(times["batched"], 4),
        "engine_overhead_ratio": round(times["engine"] / times["raw"], 3),
        "engine_matches_raw": identical,
        "batching_speedup": round(times["engine"] / times["batched"], 3),
        "images_per_second_one_by_one": round(len(plan) / times["engine"], 3),
        "images_per_second_batched": round(len(plan) / times["batched"], 3),
    }


def bench_studio(args: argparse.Namespace, photo: Path, work: Path) -> dict[str, Any]:
    engine = make_engine(Settings(VAR_DIR=str(work / "var"), ENGINE="studio"))
    model = engine.prepare("bench", [photo], ATTRS)
    plan = make_plan(args.studio_shots, None)  # the real portrait size, 1024x1280
    list(engine.render(model, plan, ATTRS))  # warm-up
    seconds = interleaved({"studio": lambda: list(engine.render(model, plan, ATTRS))}, args.repeats)["studio"]
    engine.delete(model)
    return {
        "size": list(plan.size),
        "shots": len(plan),
        "seconds": round(seconds, 4),
        "images_per_second": round(len(plan) / seconds, 2),
    }


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _size(text: str) -> tuple[int, int]:
    width, height = (int(v) for v in text.lower().split("x"))
    return width, height


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python bench/generation.py",
        description=__doc__.split("\n")[0],
        epilog="See the module docstring.",
    )
    parser.add_argument(
        "--model-dir", help="a real diffusers folder or .safetensors (default: a tiny built model)"
    )
    parser.add_argument("--device", default="auto", help="DEVICE setting (default: auto)")
    parser.add_argument(
        "--size", type=_size, help="render size WxH (default: 128x160 tiny, format size real)"
    )
    parser.add_argument("--steps", type=int, help="denoising steps (default: 4 tiny, 30 real)")
    parser.add_argument("--shots", type=int, default=8, help="shots rendered per run (default: 8)")
    parser.add_argument("--batch", type=int, default=4, help="BATCH_SIZE of the batched run (default: 4)")
    parser.add_argument("--lora-steps", type=int, help="LoRA training steps (default: 10 tiny, 400 real)")
    parser.add_argument("--lora-resolution", type=int, help="LoRA crop side (default: 64 tiny, 512 real)")
    parser.add_argument("--studio-shots", type=int, default=16, help="studio shots per run (default: 16)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved runs per figure (default: 5)")
    parser.add_argument(
        "--worker-repeats",
        type=int,
        default=11,
        help="engine/worker pairs of part 4 (default: 11; one pair's ratio varies by ±15%% here)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads (default: 1 with the tiny model, torch's choice with a real one)",
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help=f"JSON output (default: {RESULTS.relative_to(ROOT)})"
    )
    args = parser.parse_args(argv)
    real = bool(args.model_dir)
    args.size = args.size or (None if real else (128, 160))
    args.steps = args.steps or (30 if real else 4)
    args.lora_steps = args.lora_steps or (400 if real else 10)
    args.lora_resolution = args.lora_resolution or (512 if real else 64)

    import torch

    # On a small shared CPU, torch's spinning worker threads lose more to other processes than they
    # gain on a tiny model: one thread gives steadier figures. Both sides of each ratio use the same.
    if args.threads or not real:
        torch.set_num_threads(args.threads or 1)

    with tempfile.TemporaryDirectory(prefix="bench-generation-") as tmp:
        work = Path(tmp)
        photo = work / "astronaut.png"
        Image.fromarray(skimage.data.astronaut()).save(photo)
        results: dict[str, Any] = {
            "benchmark": "generation",
            "machine": {
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "torch": torch.__version__,
                "torch_threads": torch.get_num_threads(),
                "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            },
            "diffusion": bench_diffusion(args, photo, work),
            "studio": bench_studio(args, photo, work),
            "worker": bench_worker(Settings(ENGINE="studio"), _mkdir(work / "worker"), args.worker_repeats),
            "embedded": bench_embedded_session(_mkdir(work / "embedded")),
        }

    d, s = results["diffusion"], results["studio"]
    print(
        f"diffusion ({d['model']}, {d['device']} {d['dtype']}, {d['shots']} shots at {d['size'][0]}x{d['size'][1]}, {d['steps']} steps)"
    )
    print(
        f"  engine / raw diffusers     {d['engine_overhead_ratio']:.3f}x  ({d['engine_seconds']:.3f}s vs {d['raw_seconds']:.3f}s, identical images: {d['engine_matches_raw']})"
    )
    print(
        f"  batch {d['batch_size']} vs one by one     {d['batching_speedup']:.3f}x faster  ({d['batched_seconds']:.3f}s vs {d['engine_seconds']:.3f}s)"
    )
    print(
        f"  images/s                   {d['images_per_second_one_by_one']:.2f} one by one, {d['images_per_second_batched']:.2f} batched"
    )
    print(f"  person model (prepare)     {d['prepare_seconds']:.2f}s for {d['lora_steps']} LoRA steps")
    print(f"studio ({s['shots']} shots at {s['size'][0]}x{s['size'][1]})")
    print(f"  images/s                   {s['images_per_second']:.1f}")
    print(describe(results["worker"]))
    print(describe_embedded(results["embedded"]))
    write_results(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
