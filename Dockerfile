# Multi-stage build: compile in the Rust image, run from a small Debian base as a non-root user.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin scimgate

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /srv/scimgate scimgate
WORKDIR /srv/scimgate
COPY --from=build /src/target/release/scimgate /usr/local/bin/scimgate
COPY config ./config
COPY scripts ./scripts
USER scimgate
ENV SCIMGATE_SERVER__LISTEN=0.0.0.0:8080
# The admin listener (status page, /healthz, /readyz, /metrics) must be reachable by the
# orchestrator's probes; publish it only on a private network.
ENV SCIMGATE_ADMIN__LISTEN=0.0.0.0:9100
EXPOSE 8080 9100
ENTRYPOINT ["scimgate"]
CMD ["serve", "--config", "config/scimgate.toml"]
