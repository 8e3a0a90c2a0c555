"""Running jobs: the processor's loop, workflows as process groups, the platform, hooks."""
