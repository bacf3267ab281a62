#!/usr/bin/env bash
# Installs what deploy/test.sh needs on a fresh Debian 12 (about 10 s):
# podman with runc, netavark and aardvark-dns (containers find each other by
# name; netavark programs the container networks with iptables, which
# --no-install-recommends would otherwise leave out), catatonit (the pause
# process of `podman kube play` pods), podman-compose, debootstrap to make
# the base image offline, and PyYAML for the test's pod template.
set -euo pipefail

packages=(
  podman buildah runc uidmap slirp4netns netavark aardvark-dns iptables
  catatonit podman-compose debootstrap python3-yaml
)

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${packages[@]}"
