"""Flask-WTF forms: request parsing and field-level messages for the views."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    BooleanField,
    EmailField,
    Form,
    IntegerField,
    PasswordField,
    RadioField,
    SelectChoice,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import (
    DataRequired,
    Email,
    EqualTo,
    Length,
    NumberRange,
    Optional,
    Regexp,
    ValidationError,
)

#: Letters, digits, "-", "_", "(" and ")" — the Asset Security Standards' package-name rule.
NAME_PATTERN = r"^[A-Za-z0-9_()\-]+\Z"
#: The same rule for the browser's ``pattern`` attribute (implicitly anchored, "v"-flag safe).
NAME_PATTERN_HTML = r"[A-Za-z0-9_\(\)\-]+"
NAME_HINT = "Use letters, digits, - _ ( ) only; no spaces or other characters."
PACKAGE_SUFFIXES = (".zip", ".tar", ".tar.gz")
PACKAGE_ACCEPT = ".zip,.tar,.tar.gz,.tgz,application/zip,application/x-tar,application/gzip"
PACKAGE_HINT = "A .zip, .tar or .tar.gz file."

KIND_CHOICES = [("binary", "Binary package"), ("docker", "Docker image package")]
STATUS_CHOICES = [
    ("", "Any status"),
    ("draft", "Draft"),
    ("scanning", "Queued or scanning"),
    ("approved", "Approved"),
    ("rejected", "Rejected"),
    ("reviewing", "Reviewing"),
]
KIND_FILTER_CHOICES = [("", "Any kind"), *KIND_CHOICES]
SORT_CHOICES = [
    ("-updated", "Recently updated"),
    ("-created", "Newest first"),
    ("name", "Name A–Z"),
    ("-name", "Name Z–A"),
    ("updated", "Least recently updated"),
]
STAFF_ROLE_CHOICES = [("reviewer", "Reviewer"), ("operator", "Operator")]
ROLE_CHOICES = [("seller", "Seller"), *STAFF_ROLE_CHOICES]


def options(pairs: list[tuple[str, str]]) -> list[SelectChoice]:
    """(value, label) pairs as the choices of a select or radio field."""
    return [SelectChoice(value, label) for value, label in pairs]


def package_file(form, field) -> None:
    """The package must be named like one of the accepted formats (content is checked later)."""
    upload = field.data
    if upload and not upload.filename.lower().endswith(PACKAGE_SUFFIXES):
        raise ValidationError("The package must be a .zip, .tar or .tar.gz file.")


class RegisterForm(FlaskForm):
    name = StringField("Full name", validators=[DataRequired(), Length(max=120)])
    email = EmailField(
        "Email", validators=[DataRequired(), Email(check_deliverability=False), Length(max=254)]
    )
    password = PasswordField(
        "Password",
        validators=[DataRequired(), Length(min=10, message="Use at least 10 characters.")],
    )
    confirm = PasswordField(
        "Repeat password", validators=[DataRequired(), EqualTo("password", "The passwords differ.")]
    )
    submit = SubmitField("Create account")


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired()])
    remember = BooleanField("Keep me signed in")
    submit = SubmitField("Log in")


def _new_password(label: str = "New password") -> PasswordField:
    return PasswordField(
        label,
        validators=[DataRequired(), Length(min=10, message="Use at least 10 characters.")],
    )


def _repeat_password() -> PasswordField:
    return PasswordField(
        "Repeat new password",
        validators=[DataRequired(), EqualTo("password", "The passwords differ.")],
    )


class PasswordChangeForm(FlaskForm):
    """Account page: the current password, then the new one twice."""

    current = PasswordField("Current password", validators=[DataRequired()])
    password = _new_password()
    confirm = _repeat_password()
    submit = SubmitField("Change password")


class ForgotPasswordForm(FlaskForm):
    email = EmailField(
        "Email", validators=[DataRequired(), Email(check_deliverability=False), Length(max=254)]
    )
    submit = SubmitField("Send reset link")


class ResetPasswordForm(FlaskForm):
    """Set a new password with a one-time reset link."""

    password = _new_password()
    confirm = _repeat_password()
    submit = SubmitField("Set new password")


class AssetForm(FlaskForm):
    """Add Asset: one asset and its first version."""

    category = SelectField("Category", choices=options([("Application", "Application")]))
    kind = RadioField(
        "Kind", choices=options(KIND_CHOICES), default="binary", validators=[DataRequired()]
    )
    name = StringField(
        "Name",
        validators=[
            DataRequired(),
            Length(max=128),
            Regexp(NAME_PATTERN, message=f"Invalid name. {NAME_HINT}"),
        ],
    )
    version = StringField("Version", validators=[DataRequired(), Length(max=64)])
    description = TextAreaField("Description", validators=[Optional(), Length(max=5000)])
    package = FileField(
        "Package file",
        validators=[FileRequired("Choose a package file."), package_file],
    )
    save_draft = SubmitField("Save as draft")
    submit_review = SubmitField("Submit for review")


class VersionForm(FlaskForm):
    """Add a version to an existing asset: its label and package."""

    version = StringField("Version", validators=[DataRequired(), Length(max=64)])
    package = FileField(
        "Package file",
        validators=[FileRequired("Choose a package file."), package_file],
    )
    save_draft = SubmitField("Save as draft")
    submit_review = SubmitField("Submit for review")


class ModifyForm(FlaskForm):
    """Modify: a new package for an existing version, submitted again."""

    package = FileField(
        "New package file",
        validators=[FileRequired("Choose a package file."), package_file],
    )
    submit = SubmitField("Upload and resubmit")


class ConfirmForm(FlaskForm):
    """A button that only needs the CSRF token (submit, delete, deactivate)."""

    submit = SubmitField("Confirm")


class AssetFilterForm(Form):
    """The My Assets query string: search, filters, sort and page (no CSRF: a GET)."""

    q = StringField("Search by name", validators=[Optional(), Length(max=128)])
    status = SelectField("Status", choices=options(STATUS_CHOICES), default="")
    kind = SelectField("Kind", choices=options(KIND_FILTER_CHOICES), default="")
    sort = SelectField("Sort", choices=options(SORT_CHOICES), default="-updated")
    page = IntegerField("Page", default=1, validators=[Optional(), NumberRange(min=1)])

    def query(self) -> dict:
        """The cleaned values; a field that fails validation falls back to its default."""
        self.validate()
        clean = {}
        for field in (self.q, self.status, self.kind, self.sort, self.page):
            clean[field.name] = field.default if field.errors or field.data is None else field.data
        clean["q"] = clean["q"].strip() if clean["q"] else ""
        return clean


class UserCreateForm(FlaskForm):
    name = StringField("Full name", validators=[DataRequired(), Length(max=120)])
    email = EmailField(
        "Email", validators=[DataRequired(), Email(check_deliverability=False), Length(max=254)]
    )
    password = PasswordField(
        "Initial password",
        validators=[DataRequired(), Length(min=10, message="Use at least 10 characters.")],
    )
    role = SelectField("Role", choices=options(STAFF_ROLE_CHOICES), default="reviewer")
    submit = SubmitField("Create user")


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=options(ROLE_CHOICES))
    submit = SubmitField("Change role")


class RegisterObjectForm(FlaskForm):
    """Operators: a package already in the bucket becomes a seller's new asset."""

    seller_id = IntegerField("Seller id", validators=[DataRequired(), NumberRange(min=1)])
    key = StringField("Object key", validators=[DataRequired(), Length(max=512)])
    filename = StringField("Package file name", validators=[Optional(), Length(max=255)])
    kind = RadioField(
        "Kind", choices=options(KIND_CHOICES), default="binary", validators=[DataRequired()]
    )
    name = StringField("Asset name", validators=[DataRequired(), Length(max=128)])
    version = StringField("Version", validators=[DataRequired(), Length(max=64)])
    description = TextAreaField("Description", validators=[Optional(), Length(max=5000)])
    save_draft = SubmitField("Save as draft")
    submit_review = SubmitField("Register and scan")
