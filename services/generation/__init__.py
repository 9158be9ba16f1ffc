"""The generation service: a person model per session, then one headshot per planned shot.

- ``plan.py``: which shots a session gets (styles x headshots per style, size, seeds).
- ``engines/``: the engine interface and its two implementations, ``studio`` and ``diffusion``.
- ``__main__.py``: ``python -m services.generation`` (``render`` a plan from a folder of photos).

Importing this package stays cheap: torch and diffusers load only with the diffusion engine.
"""

import os

# diffusers and transformers speak to notebooks (torchvision hints, a warning per LoRA load, progress
# bars) as soon as they are imported; the worker's log keeps to what an operator needs. Set before
# any of them can be imported through this package; an explicit setting still wins.
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
