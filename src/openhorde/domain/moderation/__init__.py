"""Moderation: regex prompt filters, horde modes, messages to workers and the effects of roles."""
