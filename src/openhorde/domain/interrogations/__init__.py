"""Alchemy: interrogating an image (caption, tags, NSFW verdict) or post-processing it, form by form.

``forms`` holds the kinds of form, their prices and their lifecycle; ``intake`` creates, shows and cancels
interrogations (``/interrogate/async``, ``/status``); ``handout`` hands forms to alchemist workers and takes
their results (``/interrogate/pop``, ``/submit``); ``expiry`` takes back expired leases and removes old
interrogations (the maintenance pass).
"""
