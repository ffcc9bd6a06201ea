# Gatehouse: build on the pinned toolchain (rust-toolchain.toml says 1.95.0), run from a small
# image with no shell and no package manager, as a non-root user.
#
#   docker build -t gatehouse .
#   docker run --rm gatehouse --help
#
# The runtime image has no curl: `gatehouse healthcheck` probes /_auth/readyz on the listen
# address of the same config the server reads, so the probe cannot disagree with the server.

FROM rust:1.95.0-slim-bookworm AS build
WORKDIR /src
# The image's toolchain is the pinned one; without the toolchain file rustup does not try to
# download components (rustfmt, clippy) that a release build does not use.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY data ./data
COPY config ./config
# The `dist` profile (Cargo.toml): whole-program LTO, what the benchmarks measure.
RUN cargo build --profile dist --locked --bin gatehouse \
 && install -D -m 0755 target/dist/gatehouse /out/gatehouse \
 && install -d /out/data

# glibc and libgcc (what a Rust binary links), CA certificates, user `nonroot` (65532).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/gatehouse /usr/local/bin/gatehouse
# Owned by the runtime user, so a named volume mounted here starts out writable.
COPY --from=build --chown=65532:65532 /out/data /var/lib/gatehouse
USER 65532:65532
WORKDIR /var/lib/gatehouse
ENV GATEHOUSE_DATA_DIR=/var/lib/gatehouse
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/gatehouse", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/gatehouse"]
CMD ["serve"]
