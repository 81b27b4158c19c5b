# Build: docker build -t cds-registry .   (used by docker-compose.yml)
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bin cds-registry

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/cds-registry /usr/local/bin/cds-registry
COPY seeds /srv/seeds
WORKDIR /srv
ENV CDS_REGISTRY_LISTEN=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["cds-registry"]
CMD ["serve"]
