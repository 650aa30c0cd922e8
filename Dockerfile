# syntax=docker/dockerfile:1
# gitseal: the CLI and the in-cluster controller in one static-ish binary on distroless.
#   docker build -t gitseal:latest .

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin gitseal

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /src/target/release/gitseal /usr/local/bin/gitseal
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/gitseal"]
CMD ["controller"]
