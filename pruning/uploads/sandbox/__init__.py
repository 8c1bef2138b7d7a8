"""Uploads run in a sandboxed worker process, never in the server (see docs/security.md).

limits.py  the OS limits a worker runs under, as settings (environment variables)
wire.py    the messages between server and worker: JSON + raw arrays, no pickle, all checked
worker.py  the worker process: limits, an audit hook, one request at a time
pool.py    at most N workers, one per owner (browser session); dead or slow ones are replaced
remote.py  RemoteModel, the engine's model interface for a model living in a worker; load_upload
"""

from .limits import Limits
from .pool import Pool, WorkerFailed, pool
from .remote import RemoteModel, load_upload

__all__ = ["Limits", "Pool", "RemoteModel", "WorkerFailed", "load_upload", "pool"]
