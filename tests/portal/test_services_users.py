import pytest
from sqlalchemy import update

from portal.extensions import db
from portal.models import AuditEvent, Role
from portal.models.user import PasswordReset
from portal.services import users
from portal.services.errors import Forbidden, NotFound, ValidationError
from portal.timeutil import utcnow


def test_register_and_authenticate(app):
    user = users.register_seller("Seller@Example.com", "Sam", "a long passphrase")
    assert user.email == "seller@example.com" and user.role is Role.seller
    assert users.authenticate("seller@example.com", "a long passphrase") == user
    assert users.authenticate("SELLER@example.com ", "a long passphrase") == user
    assert users.authenticate("seller@example.com", "wrong password!") is None
    assert users.authenticate("nobody@example.com", "a long passphrase") is None


@pytest.mark.parametrize(
    ("email", "password", "field", "message"),
    [
        ("not-an-email", "a long passphrase", "email", "valid email"),
        ("a@example.com", "short", "password", "at least 10"),
        ("a@example.com", "aaaaaaaaaaaa", "password", "too easy"),
    ],
)
def test_register_refuses_bad_input(app, email, password, field, message):
    with pytest.raises(ValidationError) as error:
        users.register_seller(email, "A", password)
    assert error.value.field == field and message in error.value.message


def test_duplicate_email_is_refused_with_a_clear_message(app, factories):
    factories.user(email="taken@example.com")
    with pytest.raises(ValidationError, match="already exists") as error:
        users.register_seller("Taken@example.com", "B", "a long passphrase")
    assert error.value.field == "email"


def test_inactive_user_cannot_sign_in(app, factories):
    user = factories.user(active=False)
    assert users.authenticate(user.email, "correct horse battery") is None


def test_old_hash_is_upgraded_on_sign_in(app, factories):
    from argon2 import PasswordHasher

    user = factories.user()
    user.password_hash = PasswordHasher(time_cost=1, memory_cost=8192).hash("correct horse battery")
    old = user.password_hash
    assert users.authenticate(user.email, "correct horse battery") == user
    assert user.password_hash != old


def test_ensure_admin_creates_once(app):
    admin, password = users.ensure_admin()
    assert admin.role is Role.operator and password
    assert users.authenticate(admin.email, password) == admin
    again, none = users.ensure_admin()
    assert again == admin and none is None


def test_ensure_admin_takes_given_credentials(app):
    admin, password = users.ensure_admin("ops@example.com", "given passphrase 1")
    assert password is None and admin.email == "ops@example.com"


def test_set_role_and_active_are_operator_only_and_audited(app, factories):
    operator, seller = factories.user(Role.operator), factories.user()
    with pytest.raises(Forbidden):
        users.set_role(seller, seller.id, "operator")
    users.set_role(operator, seller.id, "reviewer")
    assert seller.role is Role.reviewer
    users.set_active(operator, seller.id, False)
    assert seller.active is False
    actions = [e.action for e in AuditEvent.query.order_by(AuditEvent.id)]
    assert actions == ["user.role", "user.active"]
    with pytest.raises(Forbidden):
        users.set_active(operator, operator.id, False)
    with pytest.raises(ValidationError, match="Unknown role"):
        users.set_role(operator, seller.id, "king")


def test_list_users_filters(app, factories):
    factories.user(email="alice@example.com")
    factories.user(Role.reviewer, email="bob@example.com")
    assert [u.email for u in users.list_users(q="ALI")] == ["alice@example.com"]
    assert [u.email for u in users.list_users(role="reviewer")] == ["bob@example.com"]


# --- sessions and resets --------------------------------------------------------------------

def _link(token: str) -> str:
    return f"https://assay.example/auth/reset/{token}"


def test_a_session_id_names_the_user_only_at_its_version(app, factories):
    user = factories.user()
    assert users.user_for_session(user.get_id()) == user
    for stale in (str(user.id), f"{user.id}:x", "", f"{user.id}:{user.session_version + 1}"):
        assert users.user_for_session(stale) is None
    users.end_sessions(user)
    assert users.user_for_session(f"{user.id}:0") is None
    assert users.user_for_session(user.get_id()) == user


def test_deactivation_ends_sessions_and_open_reset_links(app, factories):
    operator, user = factories.user(Role.operator), factories.user()
    session_id = user.get_id()
    issued = users.issue_reset(operator, user.id, _link)
    token = issued.link.rsplit("/", 1)[1]
    users.set_active(operator, user.id, False)
    assert users.user_for_session(session_id) is None
    with pytest.raises(NotFound):
        users.reset_for_token(token)
    with pytest.raises(ValidationError, match="Reactivate"):
        users.issue_reset(operator, user.id, _link)
    users.set_active(operator, user.id, True)
    assert users.user_for_session(session_id) is None  # reactivation brings nothing back
    with pytest.raises(NotFound):
        users.reset_for_token(token)


def test_a_reset_link_is_spent_by_its_first_use(app, factories, monkeypatch):
    operator, user = factories.user(Role.operator), factories.user()
    token = users.issue_reset(operator, user.id, _link).link.rsplit("/", 1)[1]
    stale = users.reset_for_token(token)  # this request looked the link up: still unused
    with db.engine.begin() as other:  # ... and another request used it in the meantime
        other.execute(update(PasswordReset).where(PasswordReset.id == stale.id)
                      .values(used_at=utcnow()))
    monkeypatch.setattr(users, "reset_for_token", lambda _token: stale)
    with pytest.raises(NotFound, match="already used"):
        users.complete_reset(token, "second new password")
    assert users.authenticate(user.email, "second new password") is None


def test_only_operators_issue_reset_links(app, factories):
    reviewer, seller = factories.user(Role.reviewer), factories.user()
    with pytest.raises(Forbidden):
        users.issue_reset(reviewer, seller.id, _link)
