"""A small NBD client for the power-cut rounds (fixed newstyle, STARTTLS with a client
certificate, NBD_OPT_GO, WRITE and FLUSH with simple replies): the rounds must know which
request was acknowledged at the moment of the cut, which a tool's exit code cannot say.
The protocol is the NBD project's doc/proto.md; the constants are its values."""

import socket
import ssl
import struct

NBDMAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
OPT_REPLY_MAGIC = 0x3E889045565A9
REQUEST_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698
OPT_STARTTLS, OPT_GO = 5, 7
REP_ACK, REP_INFO = 1, 3
CMD_WRITE, CMD_FLUSH = 1, 3
FLAG_FIXED_NEWSTYLE, FLAG_NO_ZEROES = 1, 2


class NbdError(Exception):
    pass


def _recv(s, n):
    b = b""
    while len(b) < n:
        chunk = s.recv(n - len(b))
        if not chunk:
            raise NbdError("connection closed")
        b += chunk
    return b


class Client:
    def __init__(self, port, export, certs, timeout=120):
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        magic, opt, _flags = struct.unpack(">QQH", _recv(raw, 18))
        if (magic, opt) != (NBDMAGIC, IHAVEOPT):
            raise NbdError("not a newstyle NBD server")
        raw.sendall(struct.pack(">I", FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES))
        self.s = raw
        self._option(OPT_STARTTLS, b"")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(certs / "ca-cert.pem")
        ctx.load_cert_chain(certs / "client-cert.pem", certs / "client-key.pem")
        self.s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        name = export.encode()
        infos = self._option(OPT_GO, struct.pack(">I", len(name)) + name + struct.pack(">H", 0))
        self.size = next(struct.unpack(">QH", i[2:12])[0] for i in infos
                         if struct.unpack(">H", i[:2])[0] == 0)
        self.handle = 0

    def _option(self, opt, data):
        self.s.sendall(struct.pack(">QII", IHAVEOPT, opt, len(data)) + data)
        infos = []
        while True:
            magic, _opt, rep, n = struct.unpack(">QIII", _recv(self.s, 20))
            body = _recv(self.s, n)
            if magic != OPT_REPLY_MAGIC:
                raise NbdError("bad option reply")
            if rep == REP_INFO:
                infos.append(body)
            elif rep == REP_ACK:
                return infos
            else:
                raise NbdError(f"option {opt} refused: reply {rep:#x} {body!r}")

    def _request(self, cmd, offset, data=b"", length=0):
        self.handle += 1
        self.s.sendall(struct.pack(">IHHQQI", REQUEST_MAGIC, 0, cmd, self.handle, offset,
                                   len(data) or length) + data)
        magic, err, handle = struct.unpack(">IIQ", _recv(self.s, 16))
        if magic != SIMPLE_REPLY_MAGIC or handle != self.handle:
            raise NbdError("bad reply")
        if err:
            raise NbdError(f"request {cmd} failed: error {err}")

    def write(self, offset, data):
        self._request(CMD_WRITE, offset, data)

    def flush(self):
        self._request(CMD_FLUSH, 0)

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass
