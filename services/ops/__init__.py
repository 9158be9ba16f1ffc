"""Support staff's dashboard across every organization: sessions and their timelines, stuck work,
queues, dead letters, workers, mail and the audit log. Mounted at /ops; role ``support`` only."""
