"""The HTTP side of pytest-dynpool: httpx fixtures and transports that keep a job's limits."""
