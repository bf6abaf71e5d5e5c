#!/bin/sh
# Inside the Nitro enclave: the boundary protocol on a Unix socket, bridged to vsock port 5005
# (the enclave has no other channel to the parent instance).
set -eu
mkdir -p /run/sealbridge
sealbridge enclave --tee nitro --custody --socket /run/sealbridge/enclave.sock &
while [ ! -S /run/sealbridge/enclave.sock ]; do sleep 0.1; done
exec socat VSOCK-LISTEN:5005,fork,reuseaddr UNIX-CONNECT:/run/sealbridge/enclave.sock
