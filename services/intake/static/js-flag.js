// Loaded in <head>, before the page is drawn: CSS shows the script-only controls (and hides the
// plain-form fallbacks) from the first paint. A file, not an inline <script>: the CSP forbids those.
document.documentElement.classList.add("js");
