"""The websocket gateway: pushes every step of a headshot session to its waiting page(s)."""
