"""Several worker processes serving one instance (``[server] workers = N``).

The supervisor (``supervisor.run_workers``) forks N workers before any event
loop runs. Each worker is a whole ``Server``: it binds the listen addresses
itself with SO_REUSEPORT, so the kernel spreads datagrams and connections
over the workers by a hash of source and destination (one phone's messages
always reach the same worker). What the workers share goes over a mesh of
Unix stream sockets made before the fork (``links.WorkerLinks``):

* a response whose branch names another worker (``owner_of_branch``) is
  handed to that worker, which holds its client transaction;
* a message for a connection another worker holds (connection ids are
  numbered so that ``id % N`` is the owner) is written by that worker;
* every change a worker makes to the location table is applied by the others
  (``frames.registration``), so a user registered through one worker is
  reached through every worker; worker 0 alone writes the recovery file.
"""

from __future__ import annotations

from centrex.workers.frames import WorkerInfo, owner_of_branch, worker_path

__all__ = ["WorkerInfo", "owner_of_branch", "worker_path"]
