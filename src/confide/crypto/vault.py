"""Envelope encryption of personal data, per data subject (R34), and blind indexes (R35).

Three layers: a **master key** from configuration (``CONFIDE_MASTER_KEYS``; several for rotation,
the first is current) wraps one **organisation key** per client, which wraps one **subject key**
per data subject (a visitor on a site: everything they said or gave is theirs). Personal data is
sealed with AES-256-GCM under the subject key, with the subject id as associated data, so a
ciphertext moved to another row or subject does not decrypt.

Sealed values are text: ``c1:<subject id>:<base64url(nonce ‖ ciphertext)>``. Destroying a subject
key (erasure) or an organisation key (contract end) makes every copy unreadable, backups included,
because the keys live in a separate store (:mod:`confide.crypto.keystore`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import logging
import os
import re
import threading
from collections import OrderedDict

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from confide.crypto.keystore import KeyStore

log = logging.getLogger(__name__)

PREFIX = "c1:"
#: What a value reads as once its subject's key was destroyed (erased, or a restored backup).
ERASED = "[erased]"
_CACHE = 50_000


class KeyDestroyed(LookupError):
    """The subject's (or organisation's) key no longer exists: the data is erased."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


#: A master key's name: it is stored beside every wrapped key, so short and unambiguous.
_KID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}")


def parse_master_keys(spec: str) -> list[tuple[str, bytes]]:
    """``kid:base64key,kid2:base64key`` (32-byte keys), current first."""
    keys = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        kid, _, b64 = part.partition(":")
        secret = _unb64(b64)
        if not _KID.fullmatch(kid) or len(secret) != 32:
            raise ValueError("CONFIDE_MASTER_KEYS entries are kid:base64url(32 random bytes)")
        keys.append((kid, secret))
    return keys


def new_master_key_spec(kid: str) -> str:
    """``kid:key`` for CONFIDE_MASTER_KEYS; ``kid`` is refused unless it could be parsed back."""
    if not _KID.fullmatch(kid):
        raise ValueError(
            "A key name is 1 to 40 letters, digits, dots, dashes or underscores, e.g. 2026-11."
        )
    return f"{kid}:{_b64(os.urandom(32))}"


class Vault:
    def __init__(self, store: KeyStore, master_keys: list[tuple[str, bytes]]) -> None:
        self.store = store
        self._masters = dict(master_keys)
        self._current = master_keys[0][0] if master_keys else None
        self._orgs: dict[str, bytes] = {}
        #: Subject ciphers (AESGCM objects: building one costs about a microsecond per call).
        self._subjects: OrderedDict[str, AESGCM] = OrderedDict()
        self._lock = threading.RLock()
        #: Message nonces: a random 4-byte field per process and a 64-bit counter from a random
        #: start (the deterministic construction of NIST SP 800-38D, 8.2.1). Unique per key like
        #: random nonces, but ``os.urandom`` releases the GIL on every message, and on one core
        #: the event loop then waits for the writer thread to hand it back (bench/chat_load.py).
        self._nonce_field = os.urandom(4)
        self._nonce_count = itertools.count(int.from_bytes(os.urandom(8)) >> 1)

    def _nonce(self) -> bytes:
        return self._nonce_field + next(self._nonce_count).to_bytes(8)  # < 2**64: starts < 2**63

    # --- master keys ----------------------------------------------------------------------------

    def _master(self, kid: str | None = None) -> tuple[str, bytes]:
        with self._lock:
            if self._current is None:
                self._adopt_dev_master()
            assert self._current is not None
            kid = kid or self._current
            if kid not in self._masters:
                self._masters.update(self.store.dev_masters())
            if kid not in self._masters:
                raise KeyDestroyed(f"master key {kid!r} is not configured")
            return kid, self._masters[kid]

    def make_current(self, kid: str, secret: bytes) -> None:
        """Use this master key for new wrapping from now on (rotation)."""
        with self._lock:
            self._masters[kid] = secret
            self._current = kid

    def _adopt_dev_master(self) -> None:
        """No configured master key: a development key kept in the key store (logged loudly)."""
        found = self.store.dev_master()
        if found is None:
            self.store.add_dev_master("dev1", os.urandom(32))
            found = self.store.dev_master()
            assert found is not None
            log.warning("no CONFIDE_MASTER_KEYS set: generated a development master key")
        self._masters.update(self.store.dev_masters())
        self._current = found[0]

    # --- organisation keys --------------------------------------------------------------------

    def _org_key(self, org_id: str, *, create: bool) -> bytes:
        key = self._orgs.get(org_id)
        if key is not None:
            return key
        row = self.store.org_key(org_id)
        if row is None:
            if not create:
                raise KeyDestroyed("organisation key destroyed")
            kid, master = self._master()
            fresh = os.urandom(32)
            nonce = os.urandom(12)
            wrapped = nonce + AESGCM(master).encrypt(nonce, fresh, org_id.encode())
            if not self.store.put_org_key(org_id, kid, wrapped):
                return self._org_key(org_id, create=False)
            row = (kid, wrapped)
        kid, wrapped = row
        _, master = self._master(kid)
        key = AESGCM(master).decrypt(wrapped[:12], wrapped[12:], org_id.encode())
        self._orgs[org_id] = key
        return key

    # --- subject keys ---------------------------------------------------------------------------

    def _subject_key(self, subject_id: str, org_id: str | None) -> AESGCM:
        with self._lock:
            cipher = self._subjects.get(subject_id)
            if cipher is not None:
                self._subjects.move_to_end(subject_id)
                return cipher
        row = self.store.subject_key(subject_id)
        if row is None:
            if org_id is None:
                raise KeyDestroyed("subject key destroyed")
            fresh = os.urandom(32)
            nonce = os.urandom(12)
            org_key = self._org_key(org_id, create=True)
            wrapped = nonce + AESGCM(org_key).encrypt(nonce, fresh, subject_id.encode())
            if not self.store.put_subject_key(subject_id, org_id, wrapped):
                return self._subject_key(subject_id, None)
            row = (org_id, wrapped)
        owner, wrapped = row
        org_key = self._org_key(owner, create=False)
        cipher = AESGCM(AESGCM(org_key).decrypt(wrapped[:12], wrapped[12:], subject_id.encode()))
        with self._lock:
            self._subjects[subject_id] = cipher
            if len(self._subjects) > _CACHE:
                self._subjects.popitem(last=False)
        return cipher

    # --- the API --------------------------------------------------------------------------------

    def seal(self, subject_id: str, org_id: str, plaintext: str | None) -> str | None:
        """Encrypt ``plaintext`` for this data subject (creating their key on first use)."""
        if plaintext is None:
            return None
        cipher = self._subject_key(subject_id, org_id)
        nonce = self._nonce()
        sealed = cipher.encrypt(nonce, plaintext.encode(), subject_id.encode())
        return f"{PREFIX}{subject_id}:{_b64(nonce + sealed)}"

    def open(self, token: str) -> str:
        """Decrypt a sealed value; raises :class:`KeyDestroyed` when its key is gone."""
        subject_id, _, body = token[len(PREFIX) :].partition(":")
        raw = _unb64(body)
        cipher = self._subject_key(subject_id, None)
        return cipher.decrypt(raw[:12], raw[12:], subject_id.encode()).decode()

    def has_cached(self, subject_id: str) -> bool:
        with self._lock:
            return subject_id in self._subjects

    def destroy_subject(self, subject_id: str) -> bool:
        with self._lock:
            self._subjects.pop(subject_id, None)
        return self.store.destroy_subject_key(subject_id)

    def destroy_organisation(self, org_id: str) -> int:
        with self._lock:
            self._subjects.clear()
            self._orgs.pop(org_id, None)
        return self.store.destroy_org(org_id)

    def forget_cache(self) -> None:
        """Drop cached keys (tests of backups, and after rotation)."""
        with self._lock:
            self._subjects.clear()
            self._orgs.clear()

    def rotate(self) -> int:
        """Re-wrap every organisation key under the current master key; returns how many.

        Without downtime: old master keys stay configured (listed after the new one) until this
        has run on every store; reads accept any configured master key meanwhile.
        """
        kid, master = self._master()
        n = 0
        for org_id, old_kid, wrapped in self.store.org_keys():
            if old_kid == kid:
                continue
            _, old = self._master(old_kid)
            key = AESGCM(old).decrypt(wrapped[:12], wrapped[12:], org_id.encode())
            nonce = os.urandom(12)
            fresh = nonce + AESGCM(master).encrypt(nonce, key, org_id.encode())
            self.store.rewrap_org_key(org_id, old_kid, kid, fresh)
            n += 1
        return n

    def blind_index(self, kind: str, normalised: str | None) -> str | None:
        """Keyed HMAC of a normalised value (R35): look-ups without storing the value.

        Keyed by the current master key, so an index changes when the master key rotates and
        a plain hash of a known email never matches it.
        """
        if not normalised:
            return None
        _, master = self._master()
        index_key = hmac.new(master, b"confide blind index v1", hashlib.sha256).digest()
        return hmac.new(index_key, f"{kind}:{normalised}".encode(), hashlib.sha256).hexdigest()


# --- the process's vaults (the column type reaches them without a session) ------------------

_VAULTS: dict[str, Vault] = {}
_REFS: dict[str, int] = {}
_VAULT_LOCK = threading.Lock()


def vault_for(keystore_url: str, master_spec: str) -> Vault:
    """One vault per key store in this process (several databases in one test process).

    Each :class:`~confide.storage.engine.Database` holds a reference and releases it on dispose.
    """
    with _VAULT_LOCK:
        vault = _VAULTS.get(keystore_url)
        if vault is None:
            vault = Vault(KeyStore(keystore_url), parse_master_keys(master_spec))
            _VAULTS[keystore_url] = vault
        _REFS[keystore_url] = _REFS.get(keystore_url, 0) + 1
        return vault


def release_vault(keystore_url: str) -> None:
    with _VAULT_LOCK:
        refs = _REFS.get(keystore_url, 0) - 1
        if refs > 0:
            _REFS[keystore_url] = refs
            return
        _REFS.pop(keystore_url, None)
        vault = _VAULTS.pop(keystore_url, None)
    if vault is not None:
        vault.store.close()


def open_any(token: str) -> str:
    """Decrypt with whichever vault of this process holds the subject's key."""
    vaults = list(_VAULTS.values())
    if len(vaults) == 1:
        return vaults[0].open(token)
    subject = token[len(PREFIX) :].partition(":")[0]
    cached = [v for v in vaults if v.has_cached(subject)]
    last: Exception | None = None
    for vault in cached or vaults:
        try:
            return vault.open(token)
        except KeyDestroyed as exc:
            last = exc
    raise last or KeyDestroyed("no key store is configured")
