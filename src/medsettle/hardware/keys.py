"""The card key scheme of docs/card.md, with SM4 and SM3 from the ``cryptography`` package.

    national root key ──SM4-ECB(region as 3 BCD bytes ‖ 13 zero bytes)──▶ region issuing key
    region issuing key ──SM4-ECB(card identification code, 16 bytes)──▶ card key

INTERNAL AUTHENTICATE answers SM4-ECB(card key, random(8) ‖ digest(8)), where digest is the first 8
bytes of SM3 over the values of EF05 01, EF06 08 and EF06 09, as written by the issuer. The root key
here is the simulation's own (no real key is, or could be, used); a deployment may pass another.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

# The simulation's national root key: a fixed value so every virtual card and PSAM agree across runs.
SIMULATION_ROOT_KEY = bytes.fromhex("6D6564736574746C652D726F6F742D31")  # "medsettle-root-1"


def sm4_ecb_encrypt(key: bytes, data: bytes) -> bytes:
    encryptor = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def sm4_ecb_decrypt(key: bytes, data: bytes) -> bytes:
    decryptor = Cipher(algorithms.SM4(key), modes.ECB()).decryptor()
    return decryptor.update(data) + decryptor.finalize()


def sm3(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize()


def issuing_key(region: str, root_key: bytes = SIMULATION_ROOT_KEY) -> bytes:
    """The issuing key of a pooling region (6-digit admdvs), derived from the national root key."""
    if len(region) != 6 or not region.isdigit():
        raise ValueError(f"region must be 6 digits, got {region!r}")
    return sm4_ecb_encrypt(root_key, bytes.fromhex(region) + bytes(13))


def card_key(card_sn: bytes, region_key: bytes) -> bytes:
    """A card's own key: its 16-byte identification code under its region's issuing key."""
    if len(card_sn) != 16:
        raise ValueError("a card identification code is 16 bytes")
    return sm4_ecb_encrypt(region_key, card_sn)


def card_digest(card_sn: bytes, certno: bytes, name: bytes) -> bytes:
    """First 8 bytes of SM3 over the values of EF05 01, EF06 08 and EF06 09 (no TLV headers)."""
    return sm3(card_sn + certno + name)[:8]


def auth_cryptogram(key: bytes, challenge: bytes, digest: bytes) -> bytes:
    """What INTERNAL AUTHENTICATE returns (after 6110 and GET RESPONSE): 16 bytes."""
    return sm4_ecb_encrypt(key, challenge + digest)
