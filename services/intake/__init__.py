"""Intake: the employee web app and JSON API, from invite link to "Submit my photos".

See docs/intake.md. ``create_app`` (and the table mapping the domain's refusals to HTTP) is in
app.py; the domain is sessions.py, photos.py, submission.py, results.py and deletion.py, with
errors.py (what it refuses) and commands.py (what it is asked); the event handlers are in
handlers.py; ``python -m services.intake --help`` runs it alone or prints an invite link.
"""
