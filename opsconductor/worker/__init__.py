"""The worker process: polls the chosen task queues and runs workflows and activities."""
