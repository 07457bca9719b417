#!/usr/bin/env bash
# Install the Debian packages devstack needs, only those missing.
set -euo pipefail

# iproute2 and util-linux (unshare, nsenter): each ACR Tasks run gets a network namespace of its own.
packages=(docker-registry podman buildah runc busybox-static skopeo iproute2 util-linux python3 python3-venv ca-certificates)
# tests/browser: the operators' page in a real headless browser, with a font to render its text.
packages+=(chromium fonts-dejavu-core)
# Node.js may come from elsewhere with its own npm; only fall back to Debian's when absent.
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
