"""Signed webhooks: the handler records a pending delivery (deliveries.py); the dispatcher
(dispatcher.py), outside any event handler, posts it to the organization's endpoint on a retry
schedule, refusing private addresses (addresses.py) and pinning the checked address (http.py)."""
