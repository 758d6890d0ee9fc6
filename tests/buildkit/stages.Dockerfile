FROM scratch AS one
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "for i in 1 2 3; do echo one-$i; /bin/busybox sleep 0.3; done"]

FROM scratch AS two
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "for i in 1 2 3; do echo two-$i; /bin/busybox sleep 0.3; done"]

FROM scratch
COPY --from=one /bin/busybox /bin/busybox
COPY --from=two /bin/busybox /bin/b2
