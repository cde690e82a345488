# nginx from Debian's package, in front of an upstream compose names `app`: it resolves the
# name as it starts (and exits 1 when it cannot: "host not found in upstream"). Healthy while
# /tmp/ok exists (made at start; a test removes it) and the upstream answers through it.
ARG BASE
FROM ${BASE}
COPY nginx.conf /etc/nginx/nginx.conf
COPY nginx-check /usr/local/bin/nginx-check
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=1s --timeout=2s --retries=2 CMD ["nginx-check"]
CMD ["sh", "-c", "touch /tmp/ok; exec nginx -g 'daemon off;'"]
