#!/usr/bin/python3
"""Writes what tests/bridge.c needs to run nats-server with JWT authentication (operator
mode) and a client credentials file, without NATS's own tooling (nsc is not in Debian).

    tests/nats_auth.py DIR   ->  DIR/op.jwt, DIR/auth.conf (include it in the server's
                                 config), DIR/user.creds (for `shmkit bridge --creds`)

The formats, as nats-server and libnats read them:
- an nkey is an ed25519 key written as base32 (no padding) of: a prefix byte naming the
  role (operator 'O', account 'A', user 'U'), the 32-byte public key, and a CRC-16/XMODEM
  of those bytes (little-endian); a seed is two prefix bytes ('S' and the role) and the
  32-byte private seed, with the same checksum;
- a JWT is base64url(header) "." base64url(claims) "." base64url(ed25519 signature of the
  first two parts by the issuer's key); the operator signs itself and the account, the
  account signs the user;
- the account's limits are -1 (unlimited): a missing limit reads as 0, i.e. no subscriptions;
- JetStream in operator mode needs a system account, so there are two accounts.
"""
import base64
import hashlib
import json
import os
import sys
import time

from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ROLE = {'O': 14 << 3, 'A': 0 << 3, 'U': 20 << 3}
SEED = 18 << 3


def crc16(data):
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def b32(data):
    return base64.b32encode(data).decode().rstrip('=')


def b64url(data):
    return base64.urlsafe_b64encode(data).decode().rstrip('=')


def checked(data):
    return b32(data + crc16(data).to_bytes(2, 'little'))


class NKey:
    def __init__(self, role):
        self.key = Ed25519PrivateKey.generate()
        raw = self.key.private_bytes(ser.Encoding.Raw, ser.PrivateFormat.Raw,
                                     ser.NoEncryption())
        pub = self.key.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
        r = ROLE[role]
        self.public = checked(bytes([r]) + pub)
        self.seed = checked(bytes([SEED | (r >> 5), (r & 31) << 3]) + raw)


def jwt(issuer, subject, name, nats):
    claims = {'iat': int(time.time()), 'iss': issuer.public, 'name': name, 'sub': subject,
              'nats': dict(nats, version=2)}
    claims['jti'] = b32(hashlib.sha256(json.dumps(claims, sort_keys=True).encode()).digest())
    head = b64url(json.dumps({'typ': 'JWT', 'alg': 'ed25519-nkey'}).encode())
    body = b64url(json.dumps(claims).encode())
    sig = issuer.key.sign((head + '.' + body).encode())
    return head + '.' + body + '.' + b64url(sig)


def main(out):
    op, acc, user = NKey('O'), NKey('A'), NKey('U')
    core = {'subs': -1, 'data': -1, 'payload': -1, 'imports': -1, 'exports': -1,
            'wildcards': True, 'conn': -1, 'leaf': -1}
    # JetStream (the bridge's --reliable): enabled and unlimited for the user's account only
    # (the server refuses JetStream on its system account).
    unlimited = dict(core, mem_storage=-1, disk_storage=-1, streams=-1, consumer=-1)
    with open(os.path.join(out, 'op.jwt'), 'w') as f:
        f.write(jwt(op, op.public, 'shmkit-test', {'type': 'operator'}))
    account = jwt(op, acc.public, 'shmkit-test', {'type': 'account', 'limits': unlimited})
    # JetStream in operator mode needs a system account (the server's own).
    system = NKey('A')
    sys_jwt = jwt(op, system.public, 'SYS', {'type': 'account', 'limits': core})
    with open(os.path.join(out, 'auth.conf'), 'w') as f:
        f.write('operator: "%s"\nsystem_account: %s\nresolver: MEMORY\n'
                'resolver_preload: { %s: "%s", %s: "%s" }\n'
                % (os.path.join(out, 'op.jwt'), system.public, acc.public, account,
                   system.public, sys_jwt))
    user_jwt = jwt(acc, user.public, 'shmkit-test',
                   {'type': 'user', 'pub': {}, 'sub': {}, 'subs': -1, 'data': -1,
                    'payload': -1})
    fd = os.open(os.path.join(out, 'user.creds'), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as f:
        f.write('-----BEGIN NATS USER JWT-----\n%s\n------END NATS USER JWT------\n\n'
                '-----BEGIN USER NKEY SEED-----\n%s\n------END USER NKEY SEED------\n'
                % (user_jwt, user.seed))


if __name__ == '__main__':
    if len(sys.argv) != 2:
        sys.exit('usage: nats_auth.py DIR')
    main(sys.argv[1])
