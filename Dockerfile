# syntax=docker/dockerfile:1
# Multi-stage: build with dev dependencies, run with production ones only, as a non-root user.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY routes ./routes
RUN npx tsc -p tsconfig.build.json

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# Only the CPU build of llama.cpp for this architecture; the CUDA/Vulkan prebuilt binaries (hundreds of MB)
# are left out, so the image serves local models on CPU (`gpu: false`, the default).
RUN npm ci --omit=dev --no-audit --no-fund \
 && rm -rf node_modules/@node-llama-cpp/linux-x64-cuda* node_modules/@node-llama-cpp/linux-x64-vulkan \
 && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY config ./config
COPY policies ./policies
USER node
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# SIGTERM drains for server.shutdown_grace_ms (default 7 s), then waits up to 2 s for aborted requests to settle and
# writes the ledger. `docker stop` sends SIGKILL after 10 s: give it grace + 5 s (`docker stop -t 12`,
# `docker run --stop-timeout 12`, compose `stop_grace_period: 12s`, Kubernetes terminationGracePeriodSeconds: 12).
CMD ["node", "dist/src/cli.js", "start"]
