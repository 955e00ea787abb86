"""The worker: pops jobs from any AI Horde-compatible server, generates them with diffusers, submits them.

It talks to the horde only over HTTP, so it imports nothing from ``api``, ``domain`` or ``storage``.
"""
