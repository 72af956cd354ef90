#!/usr/bin/env bash
# Make sure the real services the tests talk to are up on this machine (start or install them).
# PostgreSQL on 127.0.0.1:5432 (trust auth), RabbitMQ on 127.0.0.1:5672 (guest/guest) and Debian's chromium. The mail world,
# S3 (moto) and the rest are
# started by the tests themselves.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

ensure_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return 0; fi
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "installing PostgreSQL..." >&2
    as_root apt-get install -y -q postgresql >/dev/null
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -1)
  echo "starting PostgreSQL $version..." >&2
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 60); do
    pg_isready -q -h 127.0.0.1 -p 5432 && return 0
    sleep 1
  done
  echo "PostgreSQL did not come up on 127.0.0.1:5432" >&2
  return 1
}

ensure_postgres

ensure_rabbitmq() {
  if (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then return 0; fi
  if ! command -v rabbitmq-server >/dev/null 2>&1; then
    echo "installing RabbitMQ..." >&2
    as_root apt-get install -y -q rabbitmq-server >/dev/null
  fi
  echo "starting RabbitMQ..." >&2
  as_root rabbitmq-server -detached || true
  for _ in $(seq 1 60); do
    # await_startup exits at once while the VM is still booting: loop until it succeeds
    if as_root rabbitmqctl -q await_startup --timeout 60 2>/dev/null; then return 0; fi
    sleep 2
  done
  echo "RabbitMQ did not come up on 127.0.0.1:5672" >&2
  return 1
}

ensure_rabbitmq

# the browser tests drive Debian's chromium through Playwright (never `playwright install`)
ensure_chromium() {
  if [ -x /usr/bin/chromium ]; then return 0; fi
  echo "installing chromium..." >&2
  as_root apt-get install -y -q chromium >/dev/null
}

ensure_chromium
