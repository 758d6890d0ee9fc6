#!/bin/sh
cat /etc/demo/tools.txt /usr/lib/demo/lib.txt /etc/demo/build-info
