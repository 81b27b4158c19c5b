# Build: docker build -t cds-registry .   (used by docker-compose.yml)
FROM rust:1.95-bookworm AS build
WORKDIR /src
# 1. Dependencies only, from the manifest and lock file with stub sources, so a change to
#    our code reuses this layer instead of recompiling every crate.
COPY Cargo.toml Cargo.lock ./
COPY perf/Cargo.toml perf/
COPY testkit/Cargo.toml testkit/
RUN mkdir -p src perf/src/bin/cds-bench perf/benches testkit/src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs testkit/src/lib.rs \
    && for f in perf/src/bin/cds-bench/main.rs perf/src/bin/crawl-scale.rs \
         perf/src/bin/geo-bench.rs perf/benches/index.rs perf/benches/cross.rs; do \
         echo 'fn main() {}' > "$f"; done \
    && cargo build --release --locked --bin cds-registry \
    && rm -rf src perf testkit
# 2. The registry itself.
COPY . .
RUN touch src/lib.rs src/main.rs && cargo build --release --locked --bin cds-registry

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /srv --shell /usr/sbin/nologin cds
COPY --from=build /src/target/release/cds-registry /usr/local/bin/cds-registry
COPY seeds /srv/seeds
RUN mkdir -p /srv/data && chown -R cds:cds /srv/data
WORKDIR /srv
# Not root: the registry needs no privilege (it listens on 8080 and writes only /srv/data).
USER cds
ENV CDS_REGISTRY_LISTEN=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["cds-registry"]
CMD ["serve"]
