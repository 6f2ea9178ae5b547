# syntax=docker/dockerfile:1
# lakeprobe: the daemon with the grid storage stack from Debian 12's own packages, the same
# packages the tests run against (dev.sh APT_PACKAGES, servers and test tools left out). The
# Python bindings (python3-xrootd, python3-gfal2) are built for Debian's python3 and its
# XRootD/gfal2 libraries, so the base is Debian's image, not python:*-slim (whose separate
# Python cannot import them).
#
#   docker build -t lakeprobe:0.1.0 .
#
# Not built on the project's machines (no container engine there); CI lints this file with
# `hadolint --failure-threshold warning` (tests/test_dockerfile.py).
#
# The base is pinned to the Debian point release whose package versions are pinned below
# (12.11, read with `dpkg-query -W` on the test machines); pin it by digest as well in a
# registry you mirror to. Debian's mirrors keep only the latest version of a package: when
# a stable update supersedes a pin, the build fails loudly; bump the pins together with the
# test machines.
ARG DEBIAN_IMAGE=debian:12.11-slim

FROM ${DEBIAN_IMAGE} AS build
# Only what builds the wheel and the venv; none of it reaches the runtime image.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        python3=3.11.2-1+b1 \
        python3-venv=3.11.2-1+b1 \
        ca-certificates=20230311+deb12u1 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# .dockerignore lets in only the package sources (the committed symlinks lakeprobe/probes,
# lakeprobe/exporter and lakeprobe/data/* point into probes/, exporter/, alerting/ and
# grafana/json/, copied alongside so they resolve).
COPY . .
# The venv sees the system site-packages: at runtime that is where Debian's XRootD and gfal2
# bindings are. Same path and same interpreter in both stages, so it is copied as it is.
RUN python3 -m venv --system-site-packages /opt/lakeprobe \
    && /opt/lakeprobe/bin/pip wheel --no-cache-dir --no-deps --wheel-dir /dist . \
    && /opt/lakeprobe/bin/pip install --no-cache-dir /dist/*.whl \
    && /opt/lakeprobe/bin/pip uninstall -y pip setuptools

FROM ${DEBIAN_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="lakeprobe" \
      org.opencontainers.image.description="Continuous smoke-test and monitoring daemon for scientific data-lake storage endpoints (XRootD, WebDAV, HTTP-TPC, tokens), exporting Prometheus metrics" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="debian:12.11-slim"

# The runtime subset of dev.sh APT_PACKAGES: the XRootD client with its HTTP and SciTokens
# plugins, gfal2 with the http/xrootd/file plugins, davix, the Python bindings, iperf3 (the
# network probes). No servers, nginx or Prometheus (test-only), no curl binary (the healthcheck
# uses python3; the probes' libcurl comes with the pycurl wheel in the venv).
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        python3=3.11.2-1+b1 \
        ca-certificates=20230311+deb12u1 \
        xrootd-client=5.5.3-1 \
        xrootd-client-plugins=5.5.3-1 \
        xrootd-client-http-plugins=5.5.3-1 \
        xrootd-scitokens-plugins=5.5.3-1 \
        python3-xrootd=5.5.3-1 \
        gfal2=2.21.3-1 \
        gfal2-plugin-file=2.21.3-1 \
        gfal2-plugin-http=2.21.3-1 \
        gfal2-plugin-xrootd=2.21.3-1 \
        python3-gfal2=1.12.0-2 \
        davix=0.8.4-3 \
        iperf3=3.12-1+deb12u2 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 lakeprobe \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /var/lib/lakeprobe --shell /usr/sbin/nologin lakeprobe \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/lakeprobe \
    && install -d -m 0755 /etc/lakeprobe /etc/grid-security/certificates

COPY --from=build /opt/lakeprobe /opt/lakeprobe

# X509_CERT_DIR: the CA directory XrdCl and gfal2/davix read (mount the IGTF CAs there; the
# image ships none). HOME is the state volume: the grid clients may keep files under $HOME.
# No bytecode writes: the root filesystem is read-only (pip compiled it at install).
ENV PATH=/opt/lakeprobe/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    X509_CERT_DIR=/etc/grid-security/certificates \
    HOME=/var/lib/lakeprobe \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LAKEPROBE_HEALTH_URL=http://127.0.0.1:9780/-/healthy

# With a read-only root filesystem only these are writable: /tmp (the clients' temporary
# files) and the state store (server.state_dir: /var/lib/lakeprobe). On Kubernetes: emptyDir
# volumes (or a PVC for the state), as the Helm chart mounts them.
VOLUME ["/tmp", "/var/lib/lakeprobe"]
WORKDIR /var/lib/lakeprobe
USER 10001:10001
# The config's server.listen must be 0.0.0.0:9780 (or [::]:9780) in a container: the
# default 127.0.0.1:9780 is not reachable from outside it.
EXPOSE 9780
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['LAKEPROBE_HEALTH_URL'], timeout=4)"]
ENTRYPOINT ["lakeprobe"]
CMD ["serve", "-c", "/etc/lakeprobe/config.yaml"]
