"""Notification: the e-mails people receive along the way and the organizations' signed webhooks.

See docs/notification.md.
"""
