"""Retrying in-process: @retry, retrying(), RetryContext, RetryManager, defer() to the queue."""
