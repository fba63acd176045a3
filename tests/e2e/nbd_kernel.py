"""The Linux kernel's NBD client (nbd.ko from the Debian kernel, nbd-client from Debian)
against the writer in the same guest: newstyle, a named export, TLS with a client
certificate; mkfs.ext4, files, sync, disconnect, bookmark, recover, commit; and the
kernel's FLUSH and FUA requests counted by the writer."""

import re

CERTS = "/etc/mtkit/tls/clients/host"
CONNECT = (f"nbd-client 127.0.0.1 10809 /dev/nbd0 -N kern-disk0 -certfile {CERTS}/client-cert.pem "
           f"-keyfile {CERTS}/client-key.pem -cacertfile {CERTS}/ca-cert.pem -tlshostname localhost")
DISCONNECT = "nbd-client -d /dev/nbd0"


def counters(g):
    text = g.ok("wget -q -O - http://127.0.0.1:9810/metrics")
    flush = re.search(r'^mtkit_requests_total{group="kern",disk="kern-disk0",command="flush"} (\d+)',
                      text, re.M)
    fua = re.search(r'^mtkit_fua_requests_total{group="kern",disk="kern-disk0"} (\d+)', text, re.M)
    if not (flush and fua):
        g.fail(f"the writer's metrics lack the flush or FUA counters of kern-disk0:\n{text[:2000]}")
    return int(flush.group(1)), int(fua.group(1))


def files(g, names):
    body = "".join(f"dd if=/dev/urandom of=/mnt/nbd/{n} bs=64k count=8 2>/dev/null\n" for n in names)
    g.ok("mkdir -p /mnt/nbd && mount -t ext4 /dev/nbd0 /mnt/nbd\n" + body + "sync")
    return g.ok("cd /mnt/nbd && md5sum * | sort")


def kernel_client_steps(g, results):
    g.step = "kernel nbd client: connect"
    g.ok(f"{CONNECT} && cat /sys/block/nbd0/size")
    size = int(g.ok("cat /sys/block/nbd0/size").strip()) * 512
    if size != 64 << 20:
        g.fail(f"/dev/nbd0 has {size} bytes, kern-disk0 has {64 << 20}")
    flush0, fua0 = counters(g)

    g.step = "kernel nbd client: mkfs, files, sync, disconnect"
    g.ok("mkfs.ext4 -q -F /dev/nbd0")
    first = files(g, ["a", "b", "c"])
    g.ok(f"umount /mnt/nbd && {DISCONNECT}")
    flush1, fua1 = counters(g)
    if flush1 <= flush0:
        g.fail(f"no FLUSH reached the writer from the kernel client ({flush0} -> {flush1})")
    if fua1 <= fua0:
        g.fail(f"no FUA write reached the writer from the kernel client ({fua0} -> {fua1}); "
               "ext4's journal commits are REQ_FUA when the device offers it")

    g.step = "kernel nbd client: bookmark, more files, recover"
    g.ok("mtkit bookmark --group kern --label e2e-fs")
    g.ok(CONNECT)
    g.ok("mount -t ext4 /dev/nbd0 /mnt/nbd && rm /mnt/nbd/b && echo late > /mnt/nbd/d && sync")
    g.ok(f"umount /mnt/nbd && {DISCONNECT}")
    g.ok("mtkit recover --group kern --to latest-app && mtkit commit --group kern")
    g.ok(CONNECT)
    again = g.ok("mount -t ext4 -o ro /dev/nbd0 /mnt/nbd && cd /mnt/nbd && md5sum * | sort")
    g.ok(f"umount /mnt/nbd && {DISCONNECT}")
    if again != first:
        g.fail(f"after recover the filesystem holds\n{again}\nnot\n{first}")
    results.append(f"kernel NBD client: nbd.ko + nbd-client over TLS to export kern-disk0; "
                   f"mkfs.ext4, files, sync, disconnect, bookmark, recover, commit: files as "
                   f"at the bookmark; the writer counted {flush1 - flush0} FLUSH and "
                   f"{fua1 - fua0} FUA requests from the kernel")
