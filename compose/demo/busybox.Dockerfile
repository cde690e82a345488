# A tiny image with a shell, httpd, wget and nc, built without any registry:
# the build context holds Debian's static busybox (package busybox-static).
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN ["/bin/sh", "-c", "mkdir -p /tmp /www && chmod 1777 /tmp"]
CMD ["sh"]
