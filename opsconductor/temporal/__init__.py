"""Everything that talks to Temporal: client, data converter, task queues."""
