"""Integrations with other frameworks, each behind its own extra (``contrib.fastapi``: ``fastapi``)."""
