"""The org admin console and the policy worker: review queue, team and invites, org settings, org API."""
