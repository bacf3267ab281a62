#!/usr/bin/env bash
# End-to-end test of the container deployment with podman: builds both images
# (compiling Varscope inside the build: 10-20 minutes on 2 cores the first
# time, a minute or two after small changes thanks to the ccache mount),
# checks them (non-root user 10001:10001, no build tools, no apt lists or
# caches, sizes), runs compose.yaml's three shards and the Python trainer
# (which finds them in TF_CONFIG alone) and two C++ workers against them,
# checks the results with the CLI from a container (and that a shard list in
# another order is refused), fills a shard's disk (health NOT_SERVING and the
# container unhealthy until space is freed, then SERVING again without a
# write), backs up every shard with pruning (--keep) and serves a restored
# copy of one, stops a shard within podman's default stop timeout (it drains
# and exits 0), restarts the shards as podman-restart.service does after a
# reboot, recreates every container from the named volumes and checks that
# all data survived, runs the StatefulSet's pod template with `podman kube
# play`, and removes everything it made (the images stay, for the cache).
#
#   deploy/install-deps.sh   # once: podman, runc, iptables, podman-compose...
#   deploy/test.sh
#
# Not part of scripts/test.sh (see README, Deployment: a nightly job). Run it
# as root (or with a rootless podman that already has the base image): when
# podman has no docker.io/library/debian:bookworm-slim, deploy/base-image.sh
# makes it from the Debian mirror, since no registry may be reachable.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
deploy="$repo/deploy"
work=$(mktemp -d /tmp/varscope-deploy-test.XXXXXX)
project="vse2e$$"
image=localhost/varscope:e2e
python_image=localhost/varscope-python:e2e
shards=(varscope-0 varscope-1 varscope-2)
cluster=$(printf '%s:7070,' "${shards[@]}")
cluster=${cluster%,}
network="${project}_default"
timings=()

# The default runtime (crun) cannot set rlimits or use hybrid cgroups on these
# machines: use runc and cgroupfs through a private containers.conf, nothing
# in /etc changes; netavark (with aardvark-dns) lets containers find each
# other by name. A CONTAINERS_CONF from the caller wins.
if [ -z "${CONTAINERS_CONF:-}" ]; then
  cat >"$work/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
[network]
network_backend = "netavark"
EOF
  export CONTAINERS_CONF="$work/containers.conf"
fi
export VARSCOPE_IMAGE=$image VARSCOPE_PYTHON_IMAGE=$python_image

# What podman had before, so that cleanup removes only what the test made.
kube_network=podman-default-kube-network
had_kube_network=0
podman network exists "$kube_network" && had_kube_network=1
pause_images_before=$(podman images -q --filter reference='*/podman-pause')

log() { printf '\n== %s\n' "$*"; }
fail() {
  printf 'FAILED: %s\n' "$*" >&2
  exit 1
}
phase_start=$SECONDS
phase_done() {
  timings+=("$(printf '%-44s %4d s' "$1" $((SECONDS - phase_start)))")
  phase_start=$SECONDS
}
compose() { podman-compose -p "$project" -f "$deploy/compose.yaml" "$@"; }
# A one-shot container (no health checks: podman has no systemd timers here).
run() { podman run --rm --no-healthcheck "$@"; }
container() { echo "${project}_$1_1"; }
# Runs the varscope CLI from the image on the compose network.
cli() { run --network "$network" --entrypoint varscope "$image" "$@"; }

cleanup() {
  local status=$?
  set +e
  if [ $status -ne 0 ]; then
    log "logs (the test failed)"
    for c in $(podman ps -a --format '{{.Names}}' | grep "^${project}_"); do
      echo "--- $c"
      podman logs --tail 30 "$c" 2>&1
    done
  fi
  podman kube down "$work/kube-pod.yaml" >/dev/null 2>&1
  podman rm -f -v "${project}_restored" "${project}_fulldisk" >/dev/null 2>&1
  podman volume rm -f "${project}-data" "${project}-backup" \
    "${project}-restored" >/dev/null 2>&1
  compose down -v >"$work/down.log" 2>&1
  podman network rm -f "$network" >/dev/null 2>&1
  # What `podman kube play` made: its network and its pause image.
  [ "$had_kube_network" = 1 ] ||
    podman network rm -f "$kube_network" >/dev/null 2>&1
  for i in $(podman images -q --filter reference='*/podman-pause'); do
    [[ $pause_images_before == *$i* ]] || podman rmi -f "$i" >/dev/null 2>&1
  done
  rm -rf "$work"
  exit $status
}
trap cleanup EXIT

# Polls `podman healthcheck run` (the image's HEALTHCHECK) until healthy.
wait_healthy() {
  local c=$1
  for _ in $(seq 120); do
    if podman healthcheck run "$c" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  fail "$c did not become healthy"
}

# The health (SERVING, NOT_SERVING, ...) of the server at $2 on network $1.
health() {
  run --network "$1" --entrypoint varscope "$image" --server="$2" \
    --timeout=3 health 2>/dev/null || true
}

# Waits until the server at $2 on network $1 reports SERVING.
wait_serving() {
  for _ in $(seq 120); do
    [ "$(health "$1" "$2")" = SERVING ] && return 0
    sleep 1
  done
  fail "$2 is not serving"
}

# Prints the values of a variable read through the whole cluster, as JSON.
values() {
  cli --server="$cluster" --json get "$1" |
    /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["values"])'
}

# Every variable name per shard, one "shard name" line each, sorted.
names_per_shard() {
  for s in "${shards[@]}"; do
    cli --server="$s:7070" ls -r --names | sed "s|^|$s |"
  done | sort
}

log "base image"
base=docker.io/library/debian:bookworm-slim
podman image exists "$base" || "$deploy/base-image.sh" "$base"
mb() {
  podman image inspect --format '{{.Size}}' "$1" |
    awk '{printf "%.0f", $1 / 1e6}'
}
# The real bookworm-slim is about 75 MB: no apt lists or caches, no docs.
[ "$(mb "$base")" -le 90 ] || fail "$base is $(mb "$base") MB"
phase_done "base image"

log "build $image and $python_image"
podman build --format docker -f "$deploy/Containerfile" -t "$image" "$repo"
podman build --format docker -f "$deploy/Containerfile" --target python \
  -t "$python_image" "$repo"
phase_done "image builds"

log "image metadata"
inspect() { podman image inspect --format "$1" "$image"; }
[ "$(inspect '{{.Config.User}}')" = varscope ] || fail "image user"
[[ $(inspect '{{json .Config.Healthcheck}}') == *'"health"'* ]] ||
  fail "no HEALTHCHECK"
[[ $(inspect '{{json .Config.ExposedPorts}}') == *7070/tcp* ]] ||
  fail "port 7070 not exposed"
[[ $(inspect '{{json .Config.Volumes}}') == *'"/data"'* ]] || fail "no /data"
# uid and gid 10001 (the manifests' runAsUser, runAsGroup and fsGroup) in
# both images, owning the volumes' mount points.
for i in "$image" "$python_image"; do
  user=$(run --entrypoint id "$i")
  [ "$user" = "uid=10001(varscope) gid=10001(varscope) groups=10001(varscope)" ] ||
    fail "$i runs as $user"
done
[ "$(run --entrypoint stat "$image" -c '%u:%g' /data /backup | sort -u)" = \
  10001:10001 ] || fail "/data and /backup are not 10001:10001"
run --entrypoint sh "$image" -c '! command -v g++ && ! command -v cmake' ||
  fail "the runtime image has build tools"
# Nothing apt downloaded is in the images (or hidden in a lower layer).
for i in "$base" "$image" "$python_image"; do
  [ "$(run --user root --entrypoint find "$i" /var/lib/apt/lists /var/cache/apt \
    -type f ! -name lock)" = "" ] || fail "$i holds apt lists or caches"
done
echo "sizes: base $(mb "$base") MB, server $(mb "$image") MB," \
  "python $(mb "$python_image") MB"

log "compose up: ${shards[*]} and the trainer"
# Free ports below the ephemeral range: the test frees and takes them again
# (kube play), and an ephemeral port may meanwhile become some connection's.
ports=($(/usr/bin/python3 -c '
import random, socket
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
ports = []
while len(ports) < 3:
    port = random.randrange(10000, low)
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
    if port not in ports:
        ports.append(port)
print(" ".join(map(str, ports)))'))
export VARSCOPE_PORT_0=${ports[0]} VARSCOPE_PORT_1=${ports[1]} \
  VARSCOPE_PORT_2=${ports[2]}
compose up -d >"$work/up.log" 2>&1 || { cat "$work/up.log"; fail "up"; }
for s in "${shards[@]}"; do wait_healthy "$(container "$s")"; done
phase_done "compose up, shards healthy"
# Each shard is published on its 127.0.0.1 port.
for port in "${ports[@]}"; do
  run --network host --entrypoint varscope "$image" \
    --server="127.0.0.1:$port" health
done

log "trainer (Python, 4 processes, TF_CONFIG alone)"
trainer=$(container trainer)
env=$(podman inspect --format '{{range .Config.Env}}{{println .}}{{end}}' \
  "$trainer")
[[ $env == *TF_CONFIG=* && $env != *VARSCOPE_SERVER=* ]] ||
  fail "the trainer must find the shards in TF_CONFIG alone"
status=$(podman wait "$trainer")
podman logs "$trainer" >"$work/trainer.log" 2>&1
cat "$work/trainer.log"
[ "$status" = 0 ] || fail "trainer exited with $status"
grep -q 'global step advanced by 600 (expected 600)' "$work/trainer.log" ||
  fail "trainer's global step"
phase_done "trainer"

log "two C++ estimator workers against the cluster"
pids=()
for w in a b; do
  run --network "$network" --entrypoint estimator_worker \
    "$image" --server="$cluster" --worker=$w --steps=5 >"$work/worker_$w.log" &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || fail "a C++ worker failed"; done
cat "$work"/worker_*.log
[ "$(cat "$work"/worker_*.log | grep -c ' created$')" = 1 ] ||
  fail "exactly one worker must create linear/weights"
phase_done "C++ workers"

log "results, read with the CLI from a container"
[ "$(values linear/bias)" = "[10.0]" ] || fail "linear/bias != [10]"
[ "$(values global_step)" = 600 ] || fail "global_step != 600"
names_per_shard >"$work/names.before"
cat "$work/names.before"
for s in "${shards[@]}"; do
  grep -q "^$s " "$work/names.before" || fail "$s holds no variable"
done
[ "$(cut -d' ' -f2 "$work/names.before" | sort | uniq -d)" = "" ] ||
  fail "a variable is on two shards"
cli --server="$cluster" ls -r --names | sort >"$work/cluster.names"
diff <(cut -d' ' -f2 "$work/names.before" | sort) "$work/cluster.names" ||
  fail "the cluster listing is not the union of the shards"
# A Python worker that finds the shards only in TF_CONFIG's cluster.ps.
tf_config="{\"cluster\": {\"ps\": [\"${cluster//,/\", \"}\"]}}"
echo "TF_CONFIG=$tf_config"
python_bias=$(run --network "$network" -e TF_CONFIG="$tf_config" \
  "$python_image" -c '
import varscope as vs
vs.connect()
with vs.variable_scope("linear", reuse=True):
    print(vs.get_variable("bias").read().tolist())')
[ "$python_bias" = "[10.0]" ] || fail "Python via TF_CONFIG read $python_bias"
weights_before=$(values linear/weights)
# A worker that lists the shards in another order is refused, and told the
# cluster's order.
swapped="varscope-1:7070,varscope-0:7070,varscope-2:7070"
if out=$(cli --server="$swapped" ls 2>&1); then
  fail "a swapped shard list was served"
fi
[[ $out == *"Shard list mismatch"*"order: $cluster" ]] ||
  fail "swapped shard list: $out"
phase_done "CLI checks"

log "a full disk: NOT_SERVING and unhealthy until space is freed"
# A shard on a 32 MB tmpfs, with its own variables; a file fills the rest.
# (podman sets no tmpfs mode on /data, the image's directory.)
fulldisk="${project}_fulldisk"
podman run -d --name "$fulldisk" --network "$network" \
  --network-alias fulldisk --tmpfs /disk:rw,size=32m,mode=1777 "$image" \
  --data-dir=/disk/store >/dev/null 2>"$work/fulldisk.log" ||
  { cat "$work/fulldisk.log"; fail "the full-disk shard did not start"; }
wait_healthy "$fulldisk"
run --network "$network" --entrypoint estimator_worker "$image" \
  --server=fulldisk:7070 --worker=f --steps=1 >/dev/null
podman exec "$fulldisk" sh -c 'cat /dev/zero >/disk/filler 2>/dev/null' &&
  fail "the tmpfs did not fill"
# Small writes still fit in the log's last page: write until one fails.
out=$(run --network "$network" --entrypoint sh "$image" -c '
  for i in $(seq 5000); do
    out=$(varscope --server=fulldisk:7070 set linear/bias --value "$i" 2>&1) ||
      { echo "$out"; exit 0; }
  done; exit 1') || fail "5000 writes on a full disk succeeded"
[[ $out == *RESOURCE_EXHAUSTED*"No space left on the disk"* ]] ||
  fail "full disk: $out"
[ "$(health "$network" fulldisk:7070)" = NOT_SERVING ] ||
  fail "full disk: health $(health "$network" fulldisk:7070)"
podman healthcheck run "$fulldisk" >/dev/null 2>&1 &&
  fail "full disk: the container is healthy"
cli --server=fulldisk:7070 get linear/bias >/dev/null ||
  fail "full disk: reads fail"
podman exec "$fulldisk" rm /disk/filler
wait_serving "$network" fulldisk:7070  # without a write
wait_healthy "$fulldisk"
cli --server=fulldisk:7070 set linear/bias --value 3
[ "$(cli --server=fulldisk:7070 get linear/bias)" = "[3.0]" ] ||
  fail "writes did not resume"
podman rm -f -v "$fulldisk" >/dev/null 2>&1
phase_done "full disk"

log "back up every shard three times keeping two; restore varscope-1's"
for _ in 1 2 3; do
  for s in "${shards[@]}"; do
    cli --server="$s:7070" backup "/backup/$s" --keep=2 >"$work/backup.out"
  done
done
cat "$work/backup.out"
grep -q '^Deleted backup 1 (keeping the newest 2)$' "$work/backup.out" ||
  fail "the third backup did not delete the first"
for s in "${shards[@]}"; do
  run -v "${project}_backups:/backup" --entrypoint varscope "$image" \
    --json restore --list "/backup/$s" >"$work/backups.json"
  ids=$(/usr/bin/python3 -c '
import json, sys
print(" ".join(str(b["backup_id"]) for b in json.load(open(sys.argv[1]))))' \
    "$work/backups.json")
  [ "$ids" = "2 3" ] || fail "$s keeps backups $ids, not 2 3"
done
run -v "${project}_backups:/backup" -v "${project}-restored:/data" \
  --entrypoint varscope "$image" restore /backup/varscope-1 /data/store
podman run -d --no-healthcheck --name "${project}_restored" \
  --network "$network" --network-alias restored \
  -v "${project}-restored:/data" "$image" --data-dir=/data/store >/dev/null
wait_serving "$network" restored:7070
cli --server=restored:7070 ls -r --names | sort >"$work/restored.names"
diff <(grep '^varscope-1 ' "$work/names.before" | cut -d' ' -f2) \
  "$work/restored.names" || fail "the restored store differs from varscope-1"
podman rm -f -t 30 "${project}_restored" >/dev/null
phase_done "backup and restore"

log "SIGTERM drains and exits 0 within podman's stop timeout"
# Without -t, as podman-compose and podman-restart.service stop containers:
# podman kills a container still running 10 s after SIGTERM.
podman stop "$(container varscope-1)" >/dev/null
[ "$(podman inspect --format '{{.State.ExitCode}}' "$(container varscope-1)")" = 0 ] ||
  fail "varscope-1 did not exit 0 on SIGTERM"
[[ $(podman logs "$(container varscope-1)" 2>&1) == *'shutdown signal=SIGTERM drain_seconds=5'*'stopped'* ]] ||
  fail "varscope-1 did not drain"
phase_done "SIGTERM"

log "after a reboot the shards come back (restart: always)"
for s in "${shards[@]}"; do
  [ "$(podman inspect --format '{{.HostConfig.RestartPolicy.Name}}' \
    "$(container "$s")")" = always ] || fail "$s is not restart: always"
done
# What podman-restart.service does at boot (the containers were stopped by
# the shutdown).
podman stop "$(container varscope-0)" "$(container varscope-2)" >/dev/null
podman start --all --filter restart-policy=always >/dev/null
for s in "${shards[@]}"; do wait_healthy "$(container "$s")"; done
[ "$(podman inspect --format '{{.State.Status}}' "$(container trainer)")" = \
  exited ] || fail "the trainer (restart: no) was started again"
phase_done "reboot"

log "recreate every container; the data comes back from the volumes"
compose down >"$work/down.log" 2>&1
[ -z "$(podman ps -a --format '{{.Names}}' | grep "^${project}_")" ] ||
  fail "containers left after down"
for s in "${shards[@]}"; do
  podman volume exists "${project}_$s" || fail "volume ${project}_$s is gone"
done
compose up -d "${shards[@]}" >"$work/up2.log" 2>&1 ||
  { cat "$work/up2.log"; fail "up again"; }
for s in "${shards[@]}"; do wait_healthy "$(container "$s")"; done
names_per_shard >"$work/names.after"
diff "$work/names.before" "$work/names.after" || fail "variables changed"
[ "$(values linear/weights)" = "$weights_before" ] ||
  fail "linear/weights changed"
[ "$(values linear/bias)" = "[10.0]" ] || fail "linear/bias changed"
[ "$(values global_step)" = 600 ] || fail "global_step changed"
phase_done "restart from volumes"

log "the StatefulSet's pod template under podman kube play"
/usr/bin/python3 - "$deploy/k8s/statefulset.yaml" "$image" "$project" \
  "${ports[0]}" >"$work/kube-pod.yaml" <<'EOF'
# Turns the StatefulSet into one Pod: its template, the image under test, each
# claim template as a claim PREFIX-NAME (podman makes a volume for it), and
# a host port for the grpc port.
import sys, yaml
sts_file, image, prefix, port = sys.argv[1:]
sts = yaml.safe_load(open(sts_file))
spec = sts["spec"]["template"]["spec"]
for c in spec["containers"]:
    c["image"] = image
    for p in c["ports"]:
        if p["name"] == "grpc":
            p.update(hostPort=int(port), hostIP="127.0.0.1")
spec["volumes"] = [
    {"name": t["metadata"]["name"],
     "persistentVolumeClaim": {"claimName": prefix + "-" + t["metadata"]["name"]}}
    for t in sts["spec"]["volumeClaimTemplates"]]
pod = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": sts["metadata"]["name"] + "-0",
                    "labels": sts["spec"]["template"]["metadata"]["labels"]},
       "spec": spec}
yaml.safe_dump(pod, sys.stdout)
EOF
compose down >"$work/down.log" 2>&1  # frees the host port
podman kube play "$work/kube-pod.yaml" >"$work/kube.log" 2>&1 ||
  { cat "$work/kube.log"; fail "kube play"; }
kube_cli() {
  run --network host --entrypoint varscope "$image" \
    --server="127.0.0.1:${ports[0]}" --timeout=3 "$@"
}
wait_serving host "127.0.0.1:${ports[0]}"
run --network host --entrypoint estimator_worker "$image" \
  --server="127.0.0.1:${ports[0]}" --worker=k --steps=2 >/dev/null
podman kube down "$work/kube-pod.yaml" >/dev/null
podman kube play "$work/kube-pod.yaml" >"$work/kube.log" 2>&1 ||
  { cat "$work/kube.log"; fail "kube play again"; }
wait_serving host "127.0.0.1:${ports[0]}"
[ "$(kube_cli get linear/bias)" = "[2.0]" ] ||
  fail "the pod's claim did not keep linear/bias"
phase_done "kube play"

log "timings"
printf '%s\n' "${timings[@]}"
printf '%-44s %4d s\n' total "$SECONDS"
echo "deploy test: 1 passed, 0 failed"
