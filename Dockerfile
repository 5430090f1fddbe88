# One image for the TypeScript services and the migration runner; each compose
# service picks its entry point with `command`.
FROM node:20.18.1-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --include=dev && npm cache clean --force
COPY tsconfig.json ./
COPY bin ./bin
COPY services ./services
COPY scripts ./scripts
COPY nginx ./nginx
COPY hasura ./hasura
USER node
