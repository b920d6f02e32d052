# Sealgate's hardened image. Two stages: the build stage installs from the hash-locked files into a
# venv in Sealgate's install layout (the project in site-packages, the locked dependencies in a
# private library no interpreter start processes, every file bound by a signed install manifest)
# and runs the verifier (the build fails on any finding); the final stage carries only that venv,
# the runtime lock and the policies, runs as a fixed non-root UID, and has no pip, setuptools or
# compiler. Every start goes through the isolated launcher (ENTRYPOINT): the check runs before
# anything of the venv is imported.
#
# No '# syntax=' directive: it would make BuildKit pull a frontend image at build time, outside
# the pins below; the builder's own frontend reads everything this file uses.
#
# Base image pinned by the digest of its multi-architecture index (linux/amd64 and linux/arm64):
# python:3.11.14-slim-bookworm, the digest as pinned by several independent public repositories
# (one records it as the multi-architecture index). It was not re-resolved against Docker Hub from
# this machine (no registry access). Dependabot (docker ecosystem) proposes newer digests.

FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d AS build
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_INPUT=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md requirements.lock requirements-build.lock ./
COPY gateway/ gateway/
COPY verify/ verify/
COPY policies/ policies/
COPY docker/ docker/
# The install manifest is signed with the release key when the build is given it as a BuildKit
# secret (docker build --secret id=manifest_key,src=release-manifest-key.pem): operators can then
# pin its public half outside the image. Without the secret, a key made in this step signs it and
# is never written: only its public half ships, and the image's own signature is the anchor.
RUN --mount=type=secret,id=manifest_key \
    SEALGATE_VENV=/opt/sealgate SEALGATE_SRC=/src PYTHON=python3 \
    SEALGATE_MANIFEST_KEY_FILE=/run/secrets/manifest_key docker/install.sh

FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d AS final
# The base image's own installer goes too: the venv does not see it, but nothing should find it.
# That includes the standard library's ensurepip, which carries a pip wheel of its own.
RUN rm -rf /usr/local/lib/python3.11/site-packages/pip /usr/local/lib/python3.11/site-packages/pip-* \
      /usr/local/lib/python3.11/ensurepip \
      /usr/local/lib/python3.11/site-packages/setuptools /usr/local/lib/python3.11/site-packages/setuptools-* \
      /usr/local/lib/python3.11/site-packages/_distutils_hack /usr/local/lib/python3.11/site-packages/distutils-precedence.pth \
      /usr/local/lib/python3.11/site-packages/pkg_resources \
      /usr/local/lib/python3.11/site-packages/wheel /usr/local/lib/python3.11/site-packages/wheel-* \
      /usr/local/bin/pip /usr/local/bin/pip3 /usr/local/bin/pip3.11 /usr/local/bin/wheel \
    && mkdir -p /var/lib/sealgate \
    && chown 10001:10001 /var/lib/sealgate && chmod 0700 /var/lib/sealgate
COPY --from=build /opt/sealgate /opt/sealgate
COPY --chown=0:0 requirements.lock /etc/sealgate/requirements.lock
COPY --chown=0:0 policies/ /etc/sealgate/policies/
COPY --chown=0:0 docker/config.yaml /etc/sealgate/config.yaml
# The locks and policies live outside site-packages (nothing unowned goes there), so every command
# of the image is told where: `serve` through the config's verify section, `policy check` and
# `verify env` through these variables (a mounted config's verify section still wins for serve).
ENV PATH=/opt/sealgate/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SEALGATE_CONFIG=/etc/sealgate/config.yaml \
    SEALGATE_DATA_DIR=/var/lib/sealgate \
    SEALGATE_HOST=0.0.0.0 \
    SEALGATE_PORT=4000 \
    SEALGATE_VERIFY_LOCKS=/etc/sealgate/requirements.lock \
    SEALGATE_VERIFY_POLICIES=/etc/sealgate/policies
# The image as it ships, checked once more after the copy, by the isolated launcher: every file as
# the signed install manifest says, no start-up hook, exactly the runtime lock. A finding fails
# the build.
RUN ["/opt/sealgate/bin/python", "-I", "-S", "-B", "/opt/sealgate/lib/python3.11/site-packages/gateway/boot.py", "verify", "env", "--lock", "/etc/sealgate/requirements.lock", "--policies", "/etc/sealgate/policies"]
# Run with --read-only: the only writable place is this volume (SQLite, when no PostgreSQL).
# The admin credential comes from a mounted secret: SEALGATE_ADMIN_KEY_FILE=/run/secrets/...
VOLUME ["/var/lib/sealgate"]
USER 10001:10001
EXPOSE 4000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/opt/sealgate/bin/python", "-I", "-S", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:4000/health/live', timeout=4)"]
# The launcher itself is the entrypoint: the first interpreter runs isolated (-I -S -B), checks,
# and only then imports the gateway (gateway/boot.py). `docker run IMAGE verify env ...` works too.
ENTRYPOINT ["/opt/sealgate/bin/python", "-I", "-S", "-B", "/opt/sealgate/lib/python3.11/site-packages/gateway/boot.py"]
CMD ["serve"]
