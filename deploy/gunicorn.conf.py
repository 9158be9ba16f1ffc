"""gunicorn for the distributed web tier (intake, review, ops): threaded workers.

    WEB_SERVICES=intake gunicorn --config deploy/gunicorn.conf.py 'services.wsgi:create_wsgi()'

Everything comes from the product's settings (HOST, PORT, WEB_WORKERS, WEB_THREADS, LOG_LEVEL),
so the same environment drives gunicorn and the apps. SIGTERM stops gracefully (requests in
flight finish within ``graceful_timeout``); SIGHUP reloads the workers one by one.
"""

from libs.settings import Settings

_settings = Settings.from_env()

bind = f"{_settings.HOST}:{_settings.PORT}"
# gthread: each process serves WEB_THREADS requests at once; the apps are I/O-bound (database,
# blob store, broker), so threads are cheap concurrency. Processes add CPU parallelism.
worker_class = "gthread"
workers = _settings.WEB_WORKERS
threads = _settings.WEB_THREADS
# A worker silent this long (stuck, not merely busy: threads keep heartbeating) is replaced.
timeout = 60
# On SIGTERM (a rolling update, `docker compose stop`), requests in flight get this long to finish;
# below Kubernetes' terminationGracePeriodSeconds and Docker's stop timeout would be wise.
graceful_timeout = 25
# Behind nginx / a load balancer that keeps connections open.
keepalive = 5
# Photos are up to MAX_UPLOAD_BYTES; gunicorn streams bodies, only headers are limited here.
limit_request_field_size = 16384
accesslog = "-"
errorlog = "-"
loglevel = _settings.LOG_LEVEL.lower()
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s"'
# Connections are opened per worker after the fork (services/wsgi.py), never inherited.
preload_app = False
# gunicorn's control socket (gunicornc) is not used; one fixed path would clash between instances.
control_socket_disable = True


def worker_exit(server, worker):  # type: ignore[no-untyped-def]
    from services.wsgi import shutdown

    shutdown()
