"""Styles (a prompt template, params and models a request can borrow by name) and style collections.

``records`` creates, changes and lists styles and their example images, ``collections`` does the same for
ordered lists of styles, and ``apply`` is the step of ``POST /generate/async`` that turns a request's
``style`` into its prompt, params and models.
"""
