#!/usr/bin/env python3
"""The ecdh-sm2 known-answer vector of crypto-gm (src/ecdh.rs), computed independently of the
plugin and of any crypto library: affine double-and-add over the GB/T 32918.5 recommended
curve parameters, plain Python integers. Run: python3 tools/sm2-ecdh-kat.py"""
import hashlib

p = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
a = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC
b = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
n = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
G = (0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7,
     0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0)

def on_curve(P):
    x, y = P
    return (y * y - (x * x * x + a * x + b)) % p == 0

def add(P, Q):
    if P is None: return Q
    if Q is None: return P
    (x1, y1), (x2, y2) = P, Q
    if x1 == x2 and (y1 + y2) % p == 0: return None
    if P == Q:
        l = (3 * x1 * x1 + a) * pow(2 * y1, -1, p) % p
    else:
        l = (y2 - y1) * pow(x2 - x1, -1, p) % p
    x3 = (l * l - x1 - x2) % p
    return (x3, (l * (x1 - x3) - y1) % p)

def mul(k, P):
    R = None
    for bit in bin(k)[2:]:
        R = add(R, R)
        if bit == '1': R = add(R, P)
    return R

def compress(P):
    x, y = P
    return bytes([2 + (y & 1)]) + x.to_bytes(32, 'big')

def scalar(label):
    k = int.from_bytes(hashlib.sha256(label).digest(), 'big')
    assert 1 <= k < n
    return k

assert on_curve(G) and mul(n, G) is None
da, db = scalar(b"joule ecdh-sm2 kat a"), scalar(b"joule ecdh-sm2 kat b")
A, B = mul(da, G), mul(db, G)
assert on_curve(A) and on_curve(B)
S1, S2 = mul(da, B), mul(db, A)
assert S1 == S2
print("a      ", format(da, "064x"))
print("A      ", compress(A).hex())
print("b      ", format(db, "064x"))
print("B      ", compress(B).hex())
print("shared ", format(S1[0], "064x"))
# n - 1 times G is -G: x(G), y = p - y(G).
print("(n-1)G ", compress(mul(n - 1, G)).hex())
