"""The firmware websocket client (MicroPython, from the .mpy build) against the CPython `websockets`
server: TLS verification (tlsctx), client certificates (security profile 3), Basic auth (profiles 1
and 2) and RFC 6455 interoperability with an independent implementation."""

import asyncio
import datetime
import hashlib
import json
import ssl
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from websockets.asyncio.server import basic_auth, serve
from websockets.frames import Opcode

import build
from mp_plugin import micropython_env

MICROPYTHON = Path(sys.executable).parent / "micropython"
RUN_TIMEOUT_S = 30

# Runs inside MicroPython. argv[1] is a JSON object saying what to do; prints one "RESULT {json}".
CLIENT = r"""
import asyncio, gc, hashlib, json, sys, time
from ocpp import ws, tlsctx

cfg = json.loads(sys.argv[1])

async def opener(host, port, ssl_ctx, server_hostname):
    # Always 127.0.0.1: the URL's host name only decides what the certificate must match.
    r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ssl_ctx, server_hostname=server_hostname)
    return r

def context():
    if cfg.get("ca") is None:
        return None
    return tlsctx.make_context(cfg["ca"], cfg.get("cert"), cfg.get("key"))

async def connect(ctx=None):
    auth = tuple(cfg["auth"]) if cfg.get("auth") else None
    return await ws.connect(cfg["url"], ssl_ctx=ctx or context(), opener=opener, auth=auth, timeout_ms=5000)

async def echo():
    c = await connect()
    await c.send("hello")
    reply = await c.recv()
    await c.close()
    return {"reply": reply}

async def heap():
    # The second connection: the first one pays one-time costs (interned names, poll tables).
    ctx = context()
    out = {}
    for key in ("first", "heap"):
        gc.collect()
        before = gc.mem_alloc()
        c = await connect(ctx)
        gc.collect()
        out[key] = gc.mem_alloc() - before
        await c.send("hello")
        out["reply"] = await c.recv()
        await c.close()
        c = None
    return out

async def silent():
    # The server swallows pings: keepalive must drop the (TLS) socket under a pending recv().
    c = await connect()
    ka = asyncio.create_task(c.keepalive(0.2, 0.3))
    t0 = time.ticks_ms()
    try:
        await c.recv()
        return {"recv": "returned"}
    except ws.ConnectionClosed as e:
        await ka
        return {"closed": [e.code, e.reason], "ms": time.ticks_diff(time.ticks_ms(), t0)}

async def interop():
    out = {}
    c = await connect()
    for size in (0, 125, 126, 5000, 65535, 65536, 70001):
        msg = "%05d" % size
        msg = (msg * (size // 5 + 1))[:size]
        await c.send(msg)
        out[str(size)] = await c.recv() == "len=%d sha1=%s" % (size, hashlib.sha1(msg).digest().hex())
    await c.send("fragments")
    out["fragments"] = await c.recv()
    ka = asyncio.create_task(c.keepalive(0.1, 1))
    await asyncio.sleep_ms(500)
    out["alive_after_pings"] = not c.closed
    await c.send("pings?")
    out["server_saw_pings"] = await c.recv()
    await c.send("close me")
    try:
        await c.recv()
    except ws.ConnectionClosed as e:
        out["closed_by_server"] = [e.code, e.reason]
    await ka
    c = await connect()
    t0 = time.ticks_ms()
    await c.close(1000, "bye")
    out["client_close_ms"] = time.ticks_diff(time.ticks_ms(), t0)  # answered, not timed out
    return out

async def main():
    try:
        out = await globals()[cfg["mode"]]()
    except tlsctx.TLSConfigError as e:
        out = {"config_error": str(e)}
    except ws.TLSError as e:
        out = {"tls_error": e.reason}
    except ws.HandshakeError as e:
        out = {"handshake_error": [e.status, e.reason]}
    print("RESULT " + json.dumps(out))

asyncio.run(main())
"""


@pytest.fixture(scope="session")
def built():
    build.build("sim", quiet=True)


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject, key, issuer, issuer_key, *, ca=False, san=None, client=False):
    now = datetime.datetime.now(datetime.UTC)
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
    if client:
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """CA, server cert (localhost, 127.0.0.1), client cert CP1, and an unrelated CA. DER for the
    firmware, PEM for the CPython server."""
    import ipaddress

    d = tmp_path_factory.mktemp("pki")
    ca_key, other_key, srv_key, cli_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(4))
    ca = _cert("Test CSMS Root", ca_key, "Test CSMS Root", ca_key, ca=True)
    other = _cert("Some Other Root", other_key, "Some Other Root", other_key, ca=True)
    san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    srv = _cert("localhost", srv_key, "Test CSMS Root", ca_key, san=san)
    cli = _cert("CP1", cli_key, "Test CSMS Root", ca_key, client=True)
    der, pem = serialization.Encoding.DER, serialization.Encoding.PEM
    pkcs8 = serialization.PrivateFormat.PKCS8
    files = {
        "ca.der": ca.public_bytes(der),
        "other_ca.der": other.public_bytes(der),
        "client.der": cli.public_bytes(der),
        "client_key.der": cli_key.private_bytes(der, pkcs8, serialization.NoEncryption()),
        "ca.pem": ca.public_bytes(pem),
        "server.pem": srv.public_bytes(pem),
        "server_key.pem": srv_key.private_bytes(pem, pkcs8, serialization.NoEncryption()),
    }
    for name, data in files.items():
        (d / name).write_bytes(data)
    return d


def server_context(pki, require_client_cert=False):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki / "server.pem", pki / "server_key.pem")
    if require_client_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(pki / "ca.pem")
    return ctx


async def handler(conn):
    async for msg in conn:
        if msg == "fragments":
            await conn.send(iter(["fr", "ag", "ments"]))  # three frames: text + continuations
        elif msg == "pings?":
            await conn.send("yes" if conn.pings_answered else "no")
        elif msg == "close me":
            await conn.close(1001, "going away")
        elif msg == "hello":
            cert = conn.transport.get_extra_info("peercert")
            cn = dict(x[0] for x in cert["subject"])["commonName"] if cert else None
            user = getattr(conn, "username", None)
            await conn.send(f"echo:hello cn={cn} user={user} proto={conn.subprotocol}")
        else:
            digest = hashlib.sha1(msg.encode()).hexdigest()
            await conn.send(f"len={len(msg)} sha1={digest}")


async def counting_pings(conn):
    """The handler, with a count of the pings received (websockets answers them itself)."""
    conn.pings_answered = 0
    orig = conn.protocol.recv_frame
    deaf = conn.request.path.endswith("/silent")

    def recv_frame(frame):
        if frame.opcode is Opcode.PING:
            conn.pings_answered += 1
            if deaf:
                return None
        return orig(frame)

    conn.protocol.recv_frame = recv_frame
    await handler(conn)


async def run_client(cfg, **server_kw):
    """Start a websockets server, run the MicroPython client once, return its RESULT dict."""
    server_kw.setdefault("subprotocols", ["ocpp1.6"])
    async with serve(counting_pings, "127.0.0.1", 0, **server_kw) as server:
        port = server.sockets[0].getsockname()[1]
        scheme = "wss" if server_kw.get("ssl") else "ws"
        cfg = dict(cfg)
        cfg["url"] = f"{scheme}://{cfg.pop('host', '127.0.0.1')}:{port}/ocpp/{cfg.pop('id', 'CP1')}"
        proc = await asyncio.create_subprocess_exec(
            str(MICROPYTHON),
            "-c",
            CLIENT,
            json.dumps(cfg),
            env=micropython_env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT_S)
    text = out.decode()
    for line in text.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise AssertionError(f"no result from micropython\n{text}\n{err.decode()}")


def run(cfg, **server_kw):
    return asyncio.run(run_client(cfg, **server_kw))


def test_valid_ca_connects_and_echoes(built, pki):
    res = run({"mode": "heap", "ca": str(pki / "ca.der")}, ssl=server_context(pki))
    assert res["reply"] == "echo:hello cn=None user=None proto=ocpp1.6", res
    print("heap of an open wss connection (unix, max_message default):", res)


def test_host_name_checked_against_certificate(built, pki):
    res = run({"mode": "echo", "ca": str(pki / "ca.der"), "host": "localhost"}, ssl=server_context(pki))
    assert res["reply"].startswith("echo:hello"), res
    res = run(
        {"mode": "echo", "ca": str(pki / "ca.der"), "host": "csms.example.com"}, ssl=server_context(pki)
    )
    assert "tls_error" in res, res
    assert "CN" in res["tls_error"] or "name" in res["tls_error"].lower(), res


def test_untrusted_server_refused(built, pki):
    res = run({"mode": "echo", "ca": str(pki / "other_ca.der")}, ssl=server_context(pki))
    assert "tls_error" in res, res
    assert res["tls_error"], res


def test_missing_ca_refuses_to_connect(built, pki, tmp_path):
    res = run({"mode": "echo", "ca": str(tmp_path / "nope.der")}, ssl=server_context(pki))
    assert "config_error" in res and "missing" in res["config_error"], res
    res = run({"mode": "echo", "ca": str(pki / "ca.pem")}, ssl=server_context(pki))
    assert "config_error" in res and "PEM" in res["config_error"], res
    res = run({"mode": "echo", "ca": str(pki / "client_key.der")}, ssl=server_context(pki))
    assert "config_error" in res, res
    # wss without any context is refused by ws.connect itself (ValueError -> no RESULT line).
    with pytest.raises(AssertionError, match="wss:// needs ssl_ctx"):
        run({"mode": "echo"}, ssl=server_context(pki))


def test_client_certificate_profile_3(built, pki):
    cfg = {
        "mode": "echo",
        "ca": str(pki / "ca.der"),
        "cert": str(pki / "client.der"),
        "key": str(pki / "client_key.der"),
    }
    res = run(cfg, ssl=server_context(pki, require_client_cert=True))
    assert res["reply"] == "echo:hello cn=CP1 user=None proto=ocpp1.6", res
    res = run({"mode": "echo", "ca": str(pki / "ca.der")}, ssl=server_context(pki, require_client_cert=True))
    assert "tls_error" in res, res


def test_basic_auth_over_tls_profile_2(built, pki):
    auth = basic_auth(credentials=("CP1", "0123456789abcdef"))
    cfg = {"mode": "echo", "ca": str(pki / "ca.der"), "auth": ["CP1", "0123456789abcdef"]}
    res = run(cfg, ssl=server_context(pki), process_request=auth)
    assert res["reply"] == "echo:hello cn=None user=CP1 proto=ocpp1.6", res
    cfg["auth"] = ["CP1", "wrong"]
    res = run(cfg, ssl=server_context(pki), process_request=auth)
    assert res["handshake_error"][0] == 401, res


def test_subprotocol_not_agreed(built):
    res = run({"mode": "echo"}, subprotocols=["ocpp2.0.1"])  # websockets refuses: 400
    assert res["handshake_error"][0] == 400, res
    res = run({"mode": "echo"}, subprotocols=None)  # websockets accepts without a subprotocol
    assert "handshake_error" in res and "subprotocol" in res["handshake_error"][1], res


def test_interop_with_websockets_library(built):
    res = run({"mode": "interop"})
    for size in (0, 125, 126, 5000, 65535, 65536, 70001):
        assert res[str(size)] is True, (size, res)
    assert res["fragments"] == "fragments"
    assert res["alive_after_pings"] is True
    assert res["server_saw_pings"] == "yes"
    assert res["closed_by_server"] == [1001, "going away"]
    assert res["client_close_ms"] < 1000, res


def test_plain_ws_heap(built):
    res = run({"mode": "heap"})
    assert res["reply"] == "echo:hello cn=None user=None proto=ocpp1.6"
    print("heap of an open ws connection (unix, max_message default):", res)
    assert res["heap"] < 10752 + 3072, res  # the receive buffer plus about 2 KB (64-bit host)


def test_keepalive_drops_silent_tls_server(built, pki):
    res = run({"mode": "silent", "ca": str(pki / "ca.der"), "id": "silent"}, ssl=server_context(pki))
    assert res["closed"][0] == 1006, res
    assert "pong" in res["closed"][1], res
    assert 450 <= res["ms"] < 1500, res
