#!/usr/bin/env bash
# Sets Varscope up on a fresh Debian 12 machine and runs the example workers
# against a local server: installs the packages, builds and installs
# (varscoped, the varscope CLI, the Python package), starts varscoped on
# 127.0.0.1:7070 with ./varscope-data, runs two C++ worker processes and the
# Python Estimator-style trainer (four worker processes), then stops the
# server. Set VARSCOPE_SERVER=HOST:PORT to use another address.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
# varscoped and varscope into /usr/local/bin, the Python package where
# Debian's python3 finds it.
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo=sudo; fi
$sudo cmake --install build >/dev/null

address="${VARSCOPE_SERVER:-127.0.0.1:7070}"
log=build/varscoped.log
varscoped --listen="$address" --data-dir=./varscope-data >"$log" 2>&1 &
server=$!
trap 'kill -TERM "$server" 2>/dev/null; wait "$server" || true; cat "$log"' EXIT
for _ in $(seq 100); do
  grep -q "serving on" "$log" && break
  kill -0 "$server" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.1
done
cat "$log"

echo "== Two C++ Estimator-style workers sharing one server"
build/examples/estimator_worker --server="$address" --worker=a &
worker_a=$!
build/examples/estimator_worker --server="$address" --worker=b
wait "$worker_a"

echo "== The Python trainer: four worker processes"
/usr/bin/python3 examples/python/estimator_linear_regression.py "$address"

echo "== Sparse embeddings: four workers, Adagrad on the server"
/usr/bin/python3 examples/python/embedding_adagrad.py "$address"

echo "== What the store holds now"
varscope --server "$address" tree
