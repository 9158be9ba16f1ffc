"""The generation service: a person model per session, then one headshot per planned shot.

- ``plan.py``: which shots a session gets (styles x headshots per style, size, seeds).
- ``engines/``: the engine interface and its two implementations, ``studio`` and ``diffusion``.
- ``__main__.py``: ``python -m services.generation`` (``render`` a plan from a folder of photos).

Importing this package stays cheap: torch and diffusers load only with the diffusion engine.
"""
