"""Registered in a later change; see the issue for this paper."""
