"""Gunicorn settings for the benchmark's server (override with BENCH_GUNICORN_* variables).

Threaded workers keep wrk's connections alive (sync workers close each one after a request), and a
PATCH spends part of its time waiting on PostgreSQL, so a few threads per worker overlap that wait
with another request's Python. Two workers for two cores. HTTP parsing is gunicorn's C parser
(the gunicorn-h1c dependency) unless BENCH_GUNICORN_HTTP_PARSER=python.
"""

import os

workers = int(os.environ.get("BENCH_GUNICORN_WORKERS", "2"))
worker_class = os.environ.get("BENCH_GUNICORN_CLASS", "gthread")
threads = int(os.environ.get("BENCH_GUNICORN_THREADS", "8"))
keepalive = 30
backlog = 256
accesslog = None
errorlog = "-"
loglevel = "warning"
http_parser = os.environ.get("BENCH_GUNICORN_HTTP_PARSER", "auto")
