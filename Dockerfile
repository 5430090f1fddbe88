# One image for the TypeScript services, the migration runner, the edge renderer and the
# `tenantry` CLI, as compiled JavaScript: each compose service picks its entry point with
# `command`. Three stages: dependencies with the dev tools, the build, and a runtime with
# production dependencies and dist/ only (no TypeScript, no tsx).
ARG NODE_IMAGE=node:20.18.1-bookworm-slim

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# Optional dependencies are left out: hasura-cli (a binary downloaded at install) and pg's
# Cloudflare socket; the build needs only tsc.
RUN npm ci --no-audit --no-fund --include=dev --omit=optional

FROM deps AS build
COPY tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY services ./services
COPY hasura/migrations ./hasura/migrations
COPY nginx/templates ./nginx/templates
COPY nginx/lua ./nginx/lua
RUN npm run build

FROM ${NODE_IMAGE} AS runtime
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --omit=dev --omit=optional && npm cache clean --force
# dist/ mirrors the checkout (services/, scripts/, hasura/migrations, nginx/, bin/), so the
# compiled code finds its data files where it finds them in a checkout.
COPY --from=build /app/dist/ ./
# ${NAME} references in the environment become the secrets service's files (see
# scripts/compose/expand-secrets.ts) before any of our code runs.
ENV NODE_OPTIONS=--import=/app/scripts/compose/expand-secrets.js
USER node
EXPOSE 4001 4002 4003 4004
# Compose gives each long-running service its own health check; this one covers a plain
# `docker run` of the auth service (the default command).
HEALTHCHECK --interval=10s --timeout=3s --retries=5 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.AUTH_PORT || 4002) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "services/auth/src/main.js"]
