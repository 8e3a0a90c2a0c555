"""retryq.toml and RETRYQ_* resolved into Config and WorkflowSettings."""
