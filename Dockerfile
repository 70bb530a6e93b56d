# The mesh image: one package for the control plane (mesh control --platform kubernetes), the sidecar proxy
# (mesh proxy) and the iptables init container (mesh-init runs /bin/sh with the script in its args).
#
# Not built in CI: this workplace has no Docker engine. Build and push it where one is:
#   docker build -t ghcr.io/mesh/mesh:$(node -p "require('./package.json').version") .

# Build: TypeScript and esbuild (scripts/bundle.mjs, the proxy's one-file entry) are dev dependencies, so compile in
# a stage of its own; the C compiler builds the addon that reads a captured connection's original destination
# (native/, SO_ORIGINAL_DST) and stays in this stage.
FROM node:20-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY src ./src
COPY test ./test
COPY native ./native
COPY scripts/build-native.mjs scripts/dashboard-assets.mjs scripts/bundle.mjs ./scripts/
RUN npx tsc -p tsconfig.json && node scripts/build-native.mjs && node scripts/dashboard-assets.mjs && node scripts/bundle.mjs \
 && test -f native/build/original_dst.node && test -f dist/src/platform/kubernetes/proxy-main.cjs

# Run: production dependencies only (the prepare script needs tsc, so scripts stay off).
FROM node:20-slim
# mesh-init needs iptables; nothing else comes from Debian.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/mesh
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY bin ./bin
COPY demo ./demo
COPY --from=build /src/dist/src ./dist/src
COPY --from=build /src/native/build ./native/build
# The proxy runs as uid 2102 (the init container's iptables rules spare it), the control plane as 2103;
# the pod specs set both. Nothing here needs root but mesh-init, whose pod spec asks for it.
USER 2103:2103
ENTRYPOINT ["node", "/opt/mesh/bin/mesh.js"]
