FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "echo about to fail; echo oops >&2; exit 3"]
