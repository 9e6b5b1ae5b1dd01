# LBLab in a container: the same lbctl as on the host, for compose.yml.
FROM swift:6.1-bookworm AS build
RUN apt-get update -qq && apt-get install -y -qq libsqlite3-dev >/dev/null
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
COPY Tests ./Tests
COPY Integration ./Integration
COPY Benchmarks ./Benchmarks
RUN swift build -c release --product lbctl --static-swift-stdlib

FROM debian:bookworm-slim
RUN apt-get update -qq && apt-get install -y -qq libsqlite3-0 ca-certificates >/dev/null && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/.build/release/lbctl /usr/local/bin/lbctl
COPY config.yml /etc/lblab/config.yml
COPY scenarios /etc/lblab/scenarios
ENTRYPOINT ["lbctl"]
