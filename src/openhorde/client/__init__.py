"""The command-line client: ``openhorde generate``, ``models``, ``workers`` and ``kudos`` against any AI Horde v2
compatible server (ours or the public AI Horde).

It speaks HTTP only (``sdk.HordeClient``) and imports nothing of the server (``api``, ``domain``, ``storage``)
nor of the worker, so it starts fast and works from any machine.

    sdk.py         HordeClient: the few API calls the commands need, and the client's error hierarchy
    wire.py        the answers, parsed leniently into small dataclasses
    payload.py     the ``POST /generate/async`` body built from the command's options
    results.py     images and their JSON sidecars written to the output folder
    exit_codes.py  what each exit status means, and which error gets which
    terminal.py    what the commands share: --url/--api-key/--json, messages on stderr, errors to exit codes
    generate.py    ``openhorde generate``: submit, progress bar, Ctrl-C cancels, images written
    cli.py         ``models``, ``workers``, ``kudos``; ``register_client_commands`` adds all to ``openhorde``
"""
