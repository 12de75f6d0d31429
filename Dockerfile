# syntax=docker/dockerfile:1
# The ringmaster daemon (DESIGN §11): one binary on Debian slim, run as a non-root user with a
# read-only root filesystem. Everything it writes (store, GitOps mirror) is under
# /var/lib/ringmaster, which the deployment mounts from a persistent volume.
#
#   docker build -t ringmaster .
#   docker run --read-only -p 9464:9464 -v ringmaster:/var/lib/ringmaster \
#     -v "$PWD/config:/etc/ringmaster:ro" ringmaster      # ringmaster.yaml, rings.yaml, releases/

# The toolchain rust-toolchain.toml pins (1.95.0).
FROM rust:1.95.0-slim-bookworm AS build
# git2's https transport and libssh2 link OpenSSL.
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# --locked: exactly the dependency versions of Cargo.lock, as CI builds them.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p orchestrator --no-default-features \
 && install -m 0755 target/release/ringmaster /usr/local/bin/ringmaster

FROM debian:bookworm-slim
# CA roots for GitHub and the clusters' API servers; libssl3 for git2 (no git binary needed).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/ringmaster /usr/local/bin/ringmaster
# 65532: the conventional "nonroot" id; numeric so that runAsNonRoot can verify it.
# HOME holds .ssh/known_hosts (libgit2 checks SSH host keys against it).
RUN mkdir -p /var/lib/ringmaster /etc/ringmaster /home/ringmaster/.ssh \
 && chown -R 65532:65532 /var/lib/ringmaster /home/ringmaster
ENV HOME=/home/ringmaster
USER 65532:65532
WORKDIR /var/lib/ringmaster
VOLUME ["/var/lib/ringmaster"]
# HTTP API: /healthz, /readyz, /metrics, /api/v1, /webhooks/github.
EXPOSE 9464
ENTRYPOINT ["ringmaster"]
CMD ["run", "--config", "/etc/ringmaster/ringmaster.yaml"]
