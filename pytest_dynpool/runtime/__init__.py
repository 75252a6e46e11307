"""The pooled run: imported when a pooled phase starts, never by a plain run."""
