"""Intake: the employee web app and JSON API, from invite link to "Submit my photos".

See docs/intake.md. ``create_app`` is in app.py, the domain in onboarding.py, the event handlers in
handlers.py; ``python -m services.intake --help`` runs it alone or prints an invite link.
"""
