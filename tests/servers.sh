#!/usr/bin/env bash
# Make sure the PostgreSQL and RabbitMQ the tests use are up; start them if this machine can,
# otherwise stop with the command that would.
set -u
PG_START='pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start'
RABBIT_START='rabbitmq-server -detached'

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! port_open 5432; then
  echo "PostgreSQL is down; starting it: $PG_START"
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  for _ in $(seq 1 30); do port_open 5432 && break; sleep 1; done
  port_open 5432 || { echo "PostgreSQL is not running on 127.0.0.1:5432. Start it with: $PG_START" >&2; exit 1; }
fi

if ! port_open 5672; then
  echo "RabbitMQ is down; starting it: $RABBIT_START"
  command -v rabbitmq-server >/dev/null && rabbitmq-server -detached || true
  for _ in $(seq 1 60); do rabbitmqctl -q await_startup >/dev/null 2>&1 && break; sleep 1; done
  port_open 5672 || { echo "RabbitMQ is not running on 127.0.0.1:5672. Start it with: $RABBIT_START" >&2; exit 1; }
fi
echo "servers: PostgreSQL 127.0.0.1:5432 and RabbitMQ 127.0.0.1:5672 are up"
