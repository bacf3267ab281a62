#!/usr/bin/env bash
# Benchmarks Varscope against Redis and raw loopback TCP in one run, all on
# 127.0.0.1: measures iperf3 single-stream bandwidth, then for each durability
# mode starts varscoped and redis-server with matching persistence, runs every
# workload of varscope_loadgen against both (a warm-up and 5 timed runs each),
# stops them, times training steps on one shard and on a cluster of three,
# and prints the comparison tables (bench/report.py).
#
#   bench/run.sh [--quick] [--build-dir DIR] [--out FILE.jsonl]
#                [--shard-cpu FRACTION]
#
# --quick: the wal mode only, short runs, a 1M-row sparse table, 64 MiB with
#   one client only; under 2 minutes.
# --build-dir: where varscoped and varscope_loadgen are built (default:
#   build), configured with -DVARSCOPE_BUILD_BENCH=ON (off by default) and
#   RelWithDebInfo or Release.
# --out: keep the raw loadgen results (JSON lines) there.
# --shard-cpu: in the 1-vs-3-shard training rows, hold each shard to that
#   many CPUs (e.g. 0.3) with a cgroup CPU quota (needs root and a writable
#   cgroup cpu controller), as if each shard ran on a small machine of its
#   own; without it the shards share this machine's cores.
#
# Installs nothing: scripts/install-deps.sh brings redis-server, iperf3 and
# hiredis.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build_dir=$(dirname "$here")/build
quick=0
out=""
shard_cpu=""
cgroups=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --build-dir) build_dir=$2; shift ;;
    --build-dir=*) build_dir=${1#*=} ;;
    --out) out=$2; shift ;;
    --out=*) out=${1#*=} ;;
    --shard-cpu) shard_cpu=$2; shift ;;
    --shard-cpu=*) shard_cpu=${1#*=} ;;
    -h | --help) sed -n '2,24s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

varscoped=$build_dir/server/varscoped
loadgen=$build_dir/bench/varscope_loadgen
for f in "$varscoped" "$loadgen"; do
  [ -x "$f" ] || { echo "run.sh: $f is not built (configure" \
    "$build_dir with -DVARSCOPE_BUILD_BENCH=ON and build it)" >&2; exit 1; }
done
for cmd in redis-server iperf3 python3; do
  command -v "$cmd" > /dev/null ||
    { echo "run.sh: $cmd missing; run scripts/install-deps.sh" >&2; exit 1; }
done

if [ "$quick" = 1 ]; then
  runs=5 seconds=0.2 warmup=0.1 iperf_seconds=1 table_rows=1000000
else
  runs=5 seconds=2 warmup=1 iperf_seconds=3 table_rows=10000000
fi

# Durability modes, each with Redis's matching persistence: `wal` (every
# acknowledged write in RocksDB's WAL in the page cache) against AOF with
# appendfsync everysec; `interval` (writes persisted every second) against
# no persistence.
modes=(wal)
durability=0
if "$varscoped" --help | grep -q -- '--durability'; then
  durability=1
  [ "$quick" = 1 ] || modes+=(interval)
fi
varscoped_flags() {
  [ "$durability" = 1 ] || return 0
  case $1 in
    wal) echo --durability=wal ;;
    interval) echo --durability=interval=1s ;;
  esac
}
redis_flags() {
  case $1 in
    wal) echo --appendonly yes --appendfsync everysec ;;
    interval) echo --appendonly no ;;
  esac
}

work=$(mktemp -d /tmp/varscope-bench.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2> /dev/null || true; done
  wait 2> /dev/null || true
  for group in "${cgroups[@]}"; do rmdir "$group" 2> /dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until something listens on 127.0.0.1:$1.
wait_port() {
  for _ in $(seq 300); do
    (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null && return 0
    sleep 0.1
  done
  echo "run.sh: nothing listens on port $1" >&2
  exit 1
}

stop() {
  kill "$1" 2> /dev/null || true
  wait "$1" 2> /dev/null || true
}

echo "# Varscope benchmark ($([ "$quick" = 1 ] && echo quick || echo full))"
echo
echo "- machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)," \
  "$(free -g | awk '/^Mem:/ {print $2}') GiB RAM, Linux $(uname -r)"
echo "- $(redis-server --version | cut -d' ' -f1-3), $(iperf3 --version | head -1 | cut -d' ' -f1-2)," \
  "varscope $(git -C "$here" rev-parse --short HEAD 2> /dev/null || echo '?')"
echo "- $runs timed runs of ${seconds}s after a ${warmup}s warm-up per row;" \
  "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo

# Raw loopback TCP, one stream.
iperf_port=$(free_port)
iperf3 -s -B 127.0.0.1 -p "$iperf_port" > /dev/null 2>&1 &
iperf_pid=$!
pids+=("$iperf_pid")
wait_port "$iperf_port"
tcp=""
for _ in $(seq "$runs"); do
  gbps=$(iperf3 -c 127.0.0.1 -p "$iperf_port" -t "$iperf_seconds" -J |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 8e9)')
  tcp+="${tcp:+,}$gbps"
done
stop "$iperf_pid"

results=$work/results.jsonl
# bench MODE BACKEND ADDRESS WORKLOAD [loadgen flags]
bench() {
  local mode=$1 backend=$2 address=$3 workload=$4
  shift 4
  echo "  $mode: $backend $workload $*" >&2
  "$loadgen" --label "$mode" --backend "$backend" --address "$address" \
    --workload "$workload" --runs "$runs" --seconds "$seconds" \
    --warmup-seconds "$warmup" "$@" >> "$results"
}

for mode in "${modes[@]}"; do
  echo "durability $mode: starting varscoped and redis-server" >&2
  # shellcheck disable=SC2046
  "$varscoped" --listen 127.0.0.1:0 --data-dir "$work/varscope-$mode" \
    $(varscoped_flags "$mode") > "$work/varscoped-$mode.log" 2>&1 &
  vs_pid=$!
  pids+=("$vs_pid")
  redis_port=$(free_port)
  # shellcheck disable=SC2046
  redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$work" \
    --dbfilename "redis-$mode.rdb" --appendfilename "redis-$mode.aof" \
    --appenddirname "redis-$mode-aof" --save '' $(redis_flags "$mode") \
    > "$work/redis-$mode.log" 2>&1 &
  redis_pid=$!
  pids+=("$redis_pid")
  vs_port=""
  for _ in $(seq 300); do
    vs_port=$(sed -n 's/^varscoped serving on 127\.0\.0\.1:\([0-9]*\).*/\1/p' \
      "$work/varscoped-$mode.log")
    [ -n "$vs_port" ] && break
    kill -0 "$vs_pid" 2> /dev/null ||
      { cat "$work/varscoped-$mode.log" >&2; exit 1; }
    sleep 0.1
  done
  wait_port "$vs_port"
  wait_port "$redis_port"
  vs=127.0.0.1:$vs_port
  redis=127.0.0.1:$redis_port

  for workload in read write; do
    for bytes in 4096 1048576 4194304 67108864; do
      for clients in 1 16; do
        [ "$quick" = 1 ] && [ "$bytes" = 67108864 ] && [ "$clients" = 16 ] &&
          continue
        bench "$mode" varscope "$vs" "$workload" --bytes "$bytes" --clients "$clients"
        bench "$mode" redis "$redis" "$workload" --bytes "$bytes" --clients "$clients"
      done
    done
  done
  for bytes in 4096 1048576; do
    for clients in 1 16; do
      bench "$mode" varscope "$vs" accumulate --bytes "$bytes" --clients "$clients"
      for update in watch lossy; do
        bench "$mode" redis "$redis" accumulate --bytes "$bytes" \
          --clients "$clients" --redis-update "$update"
      done
    done
  done
  bench "$mode" varscope "$vs" train --clients 4
  for update in watch lossy; do
    bench "$mode" redis "$redis" train --clients 4 --redis-update "$update"
  done
  for clients in 1 16; do
    bench "$mode" varscope "$vs" gather --rows "$table_rows" --clients "$clients"
  done
  for workload in scatter adagrad; do
    bench "$mode" varscope "$vs" "$workload" --rows "$table_rows" --clients 1
  done

  stop "$vs_pid"
  stop "$redis_pid"
done

# Puts process $1 into a cgroup of its own holding it to $shard_cpu CPUs
# (cgroup v2, else v1's cpu controller).
limit_cpu() {
  local group quota
  quota=$(python3 -c "print(int(float('$shard_cpu') * 100000))")
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    group=/sys/fs/cgroup/varscope-bench-$1
    mkdir "$group"
    echo "$quota 100000" > "$group/cpu.max"
  else
    group=/sys/fs/cgroup/cpu/varscope-bench-$1
    mkdir "$group"
    echo 100000 > "$group/cpu.cfs_period_us"
    echo "$quota" > "$group/cpu.cfs_quota_us"
  fi
  echo "$1" > "$group/cgroup.procs"
  cgroups+=("$group")
}

# Training steps on one shard and on a cluster of three (interval mode), the
# same 4 clients and model: 100 variables spread over the shards by name.
cluster_rows() {
  local shards=$1 ports=() list="" i
  for i in $(seq "$shards"); do ports+=("$(free_port)"); done
  for i in "${!ports[@]}"; do list+="${list:+,}127.0.0.1:${ports[$i]}"; done
  local shard_pids=()
  for i in "${!ports[@]}"; do
    # shellcheck disable=SC2046
    "$varscoped" --listen "127.0.0.1:${ports[$i]}" \
      --data-dir "$work/cluster-$shards-$i" $(varscoped_flags interval) \
      $([ "$shards" -gt 1 ] && echo --cluster="$list" --shard-index="$i") \
      > "$work/cluster-$shards-$i.log" 2>&1 &
    shard_pids+=($!)
    pids+=($!)
    [ -z "$shard_cpu" ] || limit_cpu $!
  done
  for i in "${!ports[@]}"; do wait_port "${ports[$i]}"; done
  bench "shards=$shards" varscope "$list" train --clients 4
  for pid in "${shard_pids[@]}"; do stop "$pid"; done
}
echo "training on 1 and 3 shards${shard_cpu:+, each held to $shard_cpu CPUs}" >&2
cluster_rows 1
cluster_rows 3

[ -n "$out" ] && cp "$results" "$out"
python3 "$here/report.py" "$results" --tcp-gbps "$tcp" \
  ${shard_cpu:+--shard-cpu "$shard_cpu"}

# The Python client against redis-py, when the extension is built and
# Debian's python3 has numpy and redis-py.
echo
echo "## Python client against redis-py (bench/python_clients.py)"
echo
if compgen -G "$build_dir/python/varscope/_varscope*.so" > /dev/null &&
  /usr/bin/python3 -c 'import numpy, redis' 2> /dev/null; then
  # shellcheck disable=SC2046
  /usr/bin/python3 "$here/python_clients.py" --build-dir "$build_dir" \
    --runs "$runs" $([ "$quick" = 1 ] && echo --modes interval --seconds 0.2)
else
  echo "Skipped: no Python extension in $build_dir, or no python3-numpy and" \
    "python3-redis."
fi
