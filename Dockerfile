# scimgate container image.
#
#   docker build -t scimgate .
#
# Stages: `deps` compiles the dependencies alone (a layer that stays cached until Cargo.toml or
# Cargo.lock change), `build` compiles scimgate, the last stage is the runtime: a small Debian
# base, a non-root user, a data volume for the SQLite store, and a HEALTHCHECK run by the
# binary itself (`scimgate health` probes /readyz; no curl in the image).
#
# Build arguments:
#   RUNTIME_BASE   the runtime's base image (default debian:bookworm-slim)
#   BINARY=host    take a scimgate binary built outside Docker instead of compiling
#                  (HOST_BINARY, default target/release/scimgate; glibc 2.36 or older), e.g.
#                  where the rust image cannot be pulled:
#                  cargo build --release && docker build --build-arg BINARY=host -t scimgate .
ARG RUNTIME_BASE=debian:bookworm-slim
ARG BINARY=build

FROM rust:1.95-bookworm AS deps
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# Placeholder targets so `cargo build` compiles only the dependency tree.
RUN mkdir -p src benches/wire \
    && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && for b in $(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | tail -n +2); do \
         echo 'fn main() {}' > "benches/$b.rs"; done \
    && cargo build --release --locked --bin scimgate \
    && rm -rf src benches target/release/.fingerprint/scimgate-*

FROM deps AS build
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin scimgate \
    && cp target/release/scimgate /scimgate

FROM scratch AS binary-build
COPY --from=build /scimgate /scimgate

FROM scratch AS binary-host
ARG HOST_BINARY=target/release/scimgate
COPY ${HOST_BINARY} /scimgate

FROM binary-${BINARY} AS binary

FROM ${RUNTIME_BASE}
# uid 10001 owns the data directory; a named volume mounted there starts with that ownership.
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /srv/scimgate scimgate \
    && mkdir -p /srv/scimgate/data \
    && chown scimgate:scimgate /srv/scimgate/data \
    && chmod 0700 /srv/scimgate/data
WORKDIR /srv/scimgate
COPY --from=binary /scimgate /usr/local/bin/scimgate
COPY config ./config
COPY scripts ./scripts
USER 10001:10001
# The store (API keys, Basic credentials, managed groups, id map, audit log): keep it on a
# volume, or use PostgreSQL (SCIMGATE_STORE__URL).
VOLUME ["/srv/scimgate/data"]
ENV SCIMGATE_SERVER__LISTEN=0.0.0.0:8080
# The admin listener (status page, /healthz, /readyz, /metrics) must be reachable by the
# orchestrator's probes; publish it only on a private network.
ENV SCIMGATE_ADMIN__LISTEN=0.0.0.0:9100
EXPOSE 8080 9100
HEALTHCHECK --interval=10s --timeout=6s --start-period=20s --retries=3 \
    CMD ["scimgate", "health", "--timeout", "5"]
ENTRYPOINT ["scimgate"]
CMD ["serve", "--config", "config/scimgate.toml"]
