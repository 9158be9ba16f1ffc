"""Security headers on every response of every app: a strict Content-Security-Policy and friends.

    Content-Security-Policy: default-src 'self'; script-src 'self'; style-src 'self';
        img-src 'self' data: blob: [the blob store's origin]; connect-src 'self'; frame-ancestors 'none';
        form-action 'self'; base-uri 'self'; object-src 'none'
    X-Frame-Options: DENY                  (frame-ancestors for browsers that predate it)
    X-Content-Type-Options: nosniff
    Referrer-Policy: same-origin

Scripts and styles come only from the app's own static files: no inline <script>, no onclick=,
no style="..." in templates (an injected tag cannot run, and no other site can frame a page to
trick a click on "Submit my photos"). Scripts may still set ``element.style.x`` (the CSSOM is not
inline markup). ``connect-src 'self'`` covers the same origin's ws:// and wss:// too (CSP level 3,
as Chromium, Firefox and Safari implement it), which is all the live progress socket needs.

A view that needs another policy sets the header itself: these are defaults, never overwrites.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Response

from libs.storage import BlobStore


def content_security_policy(blob_origin: str | None = None) -> str:
    images = "'self' data: blob:" + (f" {blob_origin}" if blob_origin else "")
    directives = {
        "default-src": "'self'",
        "script-src": "'self'",
        "style-src": "'self'",
        "img-src": images,
        "connect-src": "'self'",
        "frame-ancestors": "'none'",
        "form-action": "'self'",
        "base-uri": "'self'",
        "object-src": "'none'",
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


def blob_origin(blobs: BlobStore) -> str | None:
    """Where the browser fetches blobs from when it is not this app (an S3-compatible store's
    signed URLs): the store's ``public_url`` attribute, if it has one, reduced to its origin."""
    url = getattr(blobs, "public_url", None)
    if not url:
        return None
    parts = urlsplit(str(url))
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def install_security_headers(app: Flask, blobs: BlobStore) -> None:
    headers = {
        "Content-Security-Policy": content_security_policy(blob_origin(blobs)),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
    }

    @app.after_request
    def _security_headers(response: Response) -> Response:
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        return response
