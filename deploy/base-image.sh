#!/usr/bin/env bash
# Makes docker.io/library/debian:bookworm-slim in podman's image store from
# the Debian mirror, for machines that reach no image registry (deploy/test.sh
# runs it when podman lacks that image). Like the real bookworm-slim: a
# minbase debootstrap without apt lists, package caches, documentation, man
# pages or translations, and dpkg told to leave those out of every package
# installed later (the official image's /etc/dpkg/dpkg.cfg.d/docker).
#
#   deploy/base-image.sh [NAME]    # NAME: docker.io/library/debian:bookworm-slim
#
# Run as root (debootstrap). Takes about 30 s; prints the image's size.
set -euo pipefail

name=${1:-docker.io/library/debian:bookworm-slim}
# The mirror apt uses here, else Debian's.
mirror=$(awk '/^URIs:/ {print $2; exit}' \
  /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}
rootfs=$(mktemp -d /tmp/varscope-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT

debootstrap --variant=minbase bookworm "$rootfs" "$mirror" \
  >"$rootfs.log" 2>&1 || { cat "$rootfs.log"; exit 1; }
rm -f "$rootfs.log"

cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
CFG
cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CFG
cat >"$rootfs/etc/apt/apt.conf.d/docker-no-languages" <<'CFG'
Acquire::Languages "none";
CFG
# The suites of the official image (bookworm, its updates and security).
rm -f "$rootfs/etc/apt/sources.list"
security=${mirror%/debian}/debian-security
cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<CFG
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
CFG
# What debootstrap leaves that no image needs.
find "$rootfs/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete
find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias \
  -exec rm -rf {} +
rm -rf "$rootfs"/usr/share/{man,groff,info,lintian,linda}/* \
  "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* \
  "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/lib/dpkg/*-old \
  "$rootfs"/var/log/* "$rootfs"/tmp/* "$rootfs"/var/tmp/*

tar --numeric-owner -C "$rootfs" -c . | podman import - "$name" >/dev/null
podman image inspect --format '{{.Size}}' "$name" |
  awk -v n="$name" '{printf "%s: %.0f MB\n", n, $1 / 1e6}'
