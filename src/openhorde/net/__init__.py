"""Connections the server opens on its users' behalf: address checks and guarded HTTP."""
