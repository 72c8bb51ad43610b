"""Accounts: organisations, users, sign-in with lockout, console sessions, and scopes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NoReturn

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import delete, select

from confide.accounts.models import ConsoleSession, Organisation, Role, SiteAssignment, User
from confide.accounts.passwords import check_length, hash_password, verify_password
from confide.accounts.principal import Principal
from confide.clock import utcnow
from confide.errors import AuthenticationFailed, Conflict, InvalidInput, LockedOut, NotFound
from confide.ids import new_id, new_secret, secret_hash
from confide.lru import LruDict
from confide.sites.models import Site
from confide.storage.engine import Database
from confide.storage.scope import Scope


def normalise_email(email: str) -> str:
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise InvalidInput(f"Not a valid email address: {exc}") from None


@dataclass(frozen=True)
class SignedIn:
    token: str
    csrf_token: str
    principal: Principal


class AccountService:
    def __init__(
        self, db: Database, *, max_failures: int, lockout: timedelta, session_ttl: timedelta
    ):
        self.db = db
        self.max_failures = max_failures
        self.lockout = lockout
        self.session_ttl = session_ttl
        self._unknown = _UnknownAddresses(max_failures, lockout)

    async def create_organisation(self, name: str) -> Organisation:
        name = name.strip()
        if not 1 <= len(name) <= 200:
            raise InvalidInput("Organisation name must be 1 to 200 characters.")
        org = Organisation(id=new_id(), name=name, created_at=utcnow())
        async with self.db.session(Scope.system()) as s:
            s.add(org)
        return org

    async def get_organisation(self, scope: Scope, organisation_id: str) -> Organisation:
        async with self.db.session(scope) as s:
            org = await s.get(Organisation, organisation_id)
            if org is None or not scope.allows(org.id):
                raise NotFound("No such organisation.")
            return org

    async def list_organisations(self, scope: Scope) -> list[Organisation]:
        async with self.db.session(scope) as s:
            return list((await s.scalars(select(Organisation).order_by(Organisation.name))).all())

    async def create_user(
        self,
        *,
        email: str,
        name: str,
        role: Role,
        password: str,
        organisation_id: str | None = None,
        site_ids: list[str] | None = None,
    ) -> User:
        email = normalise_email(email)
        name = name.strip()
        if not 1 <= len(name) <= 100:
            raise InvalidInput("Name must be 1 to 100 characters.")
        check_length(password)
        if role is Role.CLIENT and organisation_id is None:
            raise InvalidInput("A client user belongs to an organisation (--org).")
        if role is not Role.CLIENT and organisation_id is not None:
            raise InvalidInput("Only client users belong to an organisation.")
        async with self.db.session(Scope.system()) as s:
            if organisation_id is not None and await s.get(Organisation, organisation_id) is None:
                raise NotFound("No such organisation.")
            if await s.scalar(select(User.id).where(User.email == email)) is not None:
                raise Conflict("A user with this email already exists.")
            user = User(
                id=new_id(),
                organisation_id=organisation_id,
                email=email,
                name=name,
                role=role.value,
                password_hash=hash_password(password),
                failed_logins=0,
                created_at=utcnow(),
            )
            s.add(user)
            await s.flush()
            for site_id in site_ids or []:
                site = await s.get(Site, site_id)
                if site is None:
                    raise NotFound(f"No such site: {site_id}.")
                if role is Role.CLIENT and site.organisation_id != organisation_id:
                    raise InvalidInput("A client user can only be assigned their own sites.")
                s.add(SiteAssignment(user_id=user.id, site_id=site_id))
        return user

    async def assign_site(self, user_id: str, site_id: str) -> None:
        async with self.db.session(Scope.system()) as s:
            user, site = await s.get(User, user_id), await s.get(Site, site_id)
            if user is None or site is None:
                raise NotFound("No such user or site.")
            if user.role == Role.CLIENT.value and site.organisation_id != user.organisation_id:
                raise InvalidInput("A client user can only be assigned their own sites.")
            exists = await s.scalar(
                select(SiteAssignment.id).where(
                    SiteAssignment.user_id == user_id, SiteAssignment.site_id == site_id
                )
            )
            if exists is None:
                s.add(SiteAssignment(user_id=user_id, site_id=site_id))

    async def sign_in(self, email: str, password: str) -> SignedIn:
        """Check the password; lock the account after ``max_failures`` consecutive failures.

        An address with no account gets the same answers at the same points (401, then 429
        for the lockout period), counted in memory: otherwise the lockout itself would tell
        anyone which addresses have an account.
        """
        try:
            email = normalise_email(email)
        except InvalidInput:
            verify_password(None, password)
            raise AuthenticationFailed() from None
        now = utcnow()
        async with self.db.session(Scope.system()) as s:
            user = await s.scalar(select(User).where(User.email == email))
            if user is None:
                self._unknown.fail(email, now, password)  # raises
            assert user is not None
            if user.locked_until is not None and user.locked_until > now:
                raise LockedOut()
            if not verify_password(user.password_hash, password):
                user.failed_logins += 1
                if user.failed_logins >= self.max_failures:
                    user.locked_until = now + self.lockout
                    user.failed_logins = 0
                failed = True
            else:
                failed = False
                user.failed_logins = 0
                user.locked_until = None
                token, csrf = new_secret(), new_secret()
                s.add(
                    ConsoleSession(
                        token_hash=secret_hash(token),
                        user_id=user.id,
                        csrf_token=csrf,
                        created_at=now,
                        expires_at=now + self.session_ttl,
                    )
                )
        if failed:
            raise AuthenticationFailed()
        return SignedIn(token, csrf, await self.principal_for(user))

    async def sign_out(self, token: str) -> None:
        async with self.db.session(Scope.system()) as s:
            await s.execute(
                delete(ConsoleSession).where(ConsoleSession.token_hash == secret_hash(token))
            )

    async def session_principal(self, token: str) -> tuple[Principal, str]:
        """The principal and CSRF token of a live session, or :class:`AuthenticationFailed`."""
        async with self.db.session(Scope.system(), read_only=True) as s:
            row = await s.get(ConsoleSession, secret_hash(token))
            if row is None or row.expires_at <= utcnow():
                raise AuthenticationFailed("Your session has ended. Sign in again.")
            user = await s.get(User, row.user_id)
            if user is None:
                raise AuthenticationFailed("Your session has ended. Sign in again.")
            csrf = row.csrf_token
        return await self.principal_for(user), csrf

    async def principal_for(self, user: User) -> Principal:
        role = Role(user.role)
        async with self.db.session(Scope.system(), read_only=True) as s:
            if role is Role.ADMIN:
                scope = Scope.admin()
                sites = frozenset((await s.scalars(select(Site.id))).all())
            elif role is Role.CLIENT:
                assert user.organisation_id is not None
                scope = Scope.organisation(user.organisation_id)
                sites = frozenset(
                    (
                        await s.scalars(
                            select(Site.id).where(Site.organisation_id == user.organisation_id)
                        )
                    ).all()
                )
            else:
                rows = (
                    await s.execute(
                        select(Site.id, Site.organisation_id)
                        .join(SiteAssignment, SiteAssignment.site_id == Site.id)
                        .where(SiteAssignment.user_id == user.id)
                    )
                ).all()
                sites = frozenset(r[0] for r in rows)
                scope = Scope.sites(sites, frozenset(r[1] for r in rows))
        return Principal(user.id, user.name, user.email, role, user.organisation_id, scope, sites)

    async def user_id_by_email(self, email: str) -> str:
        async with self.db.session(Scope.system()) as s:
            user_id = await s.scalar(select(User.id).where(User.email == normalise_email(email)))
        if user_id is None:
            raise NotFound("No such user.")
        return str(user_id)


class _UnknownAddresses:
    """Failed sign-ins for addresses with no account, counted like an account's (in memory,
    per process, the least recently tried forgotten past ``MAX``; keyed by a hash)."""

    MAX = 10_000

    def __init__(self, max_failures: int, lockout: timedelta) -> None:
        self._max_failures = max_failures
        self._lockout = lockout
        self._seen: LruDict[str, tuple[int, datetime | None]] = LruDict(self.MAX)

    def fail(self, email: str, now: datetime, password: str) -> NoReturn:
        key = secret_hash(email)
        failures, locked_until = self._seen.get(key, (0, None))
        if locked_until is not None and locked_until > now:
            self._seen[key] = (failures, locked_until)
            raise LockedOut()
        verify_password(None, password)  # the time a real check takes
        failures += 1
        if failures >= self._max_failures:
            failures, locked_until = 0, now + self._lockout
        self._seen[key] = (failures, locked_until)
        raise AuthenticationFailed()
