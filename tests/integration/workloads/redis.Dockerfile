# Redis 7 from Debian's package, every write on disk before it is acknowledged (appendonly,
# fsync always). Healthy while it answers PING within a second.
ARG BASE
FROM ${BASE}
USER redis
WORKDIR /var/lib/redis
HEALTHCHECK --interval=1s --timeout=1s --retries=2 CMD ["redis-cli", "-h", "127.0.0.1", "ping"]
CMD ["redis-server", "--bind", "127.0.0.1", "--appendonly", "yes", "--appendfsync", "always", \
     "--dir", "/var/lib/redis", "--enable-debug-command", "yes"]
