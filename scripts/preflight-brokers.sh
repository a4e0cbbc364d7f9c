#!/usr/bin/env bash
# Makes sure the real brokers the test suite needs are up: RabbitMQ (127.0.0.1:5672), NATS with
# JetStream (127.0.0.1:4222) and Redis (127.0.0.1:6379). A stopped one is started with its Debian package's own server command.
# Kafka and ElasticMQ (SQS) are started by their packages' test setup itself. If a broker stays unreachable, this fails
# loudly: broker tests are never skipped.
set -uo pipefail

reachable() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() { # port seconds
  for _ in $(seq 1 "$2"); do reachable "$1" && return 0; sleep 1; done
  return 1
}

ensure() { # name port start-command...
  local name=$1 port=$2; shift 2
  reachable "$port" && return 0
  echo "[preflight] $name is not listening on 127.0.0.1:$port; starting it" >&2
  "$@" >/dev/null 2>&1 || true
  if ! wait_for "$port" 60; then
    echo "[preflight] FATAL: $name is unreachable on 127.0.0.1:$port; broker tests cannot run" >&2
    return 1
  fi
}

# A RabbitMQ node can be up with its app stopped (e.g. after an interrupted restart test): start_app first.
start_rabbitmq() { rabbitmqctl -q start_app 2>/dev/null || rabbitmq-server -detached; }

status=0
ensure RabbitMQ 5672 start_rabbitmq || status=1
[ $status -eq 0 ] && node "$(dirname "$0")/clean-rabbitmq.mjs"
ensure NATS 4222 start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
  -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log || status=1
ensure Redis 6379 redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
  --dir /var/lib/redis --logfile /var/log/redis/ci.log || status=1
exit $status
