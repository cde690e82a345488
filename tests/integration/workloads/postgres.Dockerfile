# PostgreSQL 15 from Debian's package. Healthy while it accepts connections and /tmp/healthy
# exists (a test removes the file to make it unhealthy for real). SIGTERM is Postgres's
# smart shutdown: it waits for open sessions to end, then exits 0.
ARG BASE
FROM ${BASE}
USER postgres
ENV PATH=/usr/lib/postgresql/15/bin:/usr/bin:/bin PGDATA=/var/lib/postgresql/data
RUN initdb --auth=trust --no-sync -D "$PGDATA" >/dev/null \
 && printf "listen_addresses = '127.0.0.1'\nunix_socket_directories = '/tmp'\n" >> "$PGDATA/postgresql.conf"
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=1s --timeout=2s --retries=2 \
  CMD ["sh", "-c", "test -f /tmp/healthy && pg_isready -h 127.0.0.1 -q"]
CMD ["sh", "-c", "touch /tmp/healthy; exec postgres"]
