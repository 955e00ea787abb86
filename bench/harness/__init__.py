"""What every benchmark under ``bench/`` shares.

* ``launcher`` -- start ``openhorde serve`` (1..N processes) on a free loopback port with a temporary data
  directory, on SQLite or a scratch PostgreSQL database; capture its log; stop it.
* ``client`` -- a minimal keep-alive HTTP/1.1 client and ``Api``, which times each call into ``Stats``.
* ``horde`` -- the horde calls the simulated users and workers make (register, async, check, pop, submit).
* ``cpu`` -- CPU time of the server's process tree and of PostgreSQL's backends, from ``/proc``.
* ``gpu`` -- seconds and peak GPU memory of one call of model work (the post-processing and ControlNet benches).
* ``stats`` -- latency samples, percentiles, tables and the ``RESULT {json}`` line.
* ``tasks`` -- bounded loops, starting and stopping task groups, the event loop.

The scripts in ``bench/`` run with ``bench/`` on ``sys.path`` (Python puts a script's directory there), so
they ``import harness``; anything else (a test) adds ``bench/`` to ``sys.path`` first.
"""
