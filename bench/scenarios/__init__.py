"""The phases of ``server_cycle.py``, one module each, and the code that runs them against fresh servers.

* ``config`` -- the command line and the load shapes (``--load stress|steady``).
* ``cycle`` -- phase 1: simulated workers and clients cycling jobs; jobs/s, CPU per job, latency.
* ``costs`` -- the endpoint-cost step: server CPU per call of single endpoints and of a bare cycle.
* ``deep`` -- phase 2: pop latency against a deep queue.
* ``targets`` -- issue 13's targets and the worker-count comparison.
* ``session`` -- one run (a server, the phases), ``--db both`` and ``--compare-workers``.
"""
