"""Provider events: what telcos, banks, post and internet firms and citizens send a node.

Every event has a stable ``event_id`` chosen by its provider (ingestion is idempotent on it),
a ``kind`` and a time. Numbers are normalised to E.164 on validation; a bad value raises a
``pydantic.ValidationError`` whose message names the field and the reason.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    field_validator,
    model_validator,
)

from forewarn.model.indicators import IndicatorType, as_utc, normalise_indicator
from forewarn.model.phone import country_of, normalise_phone, normalise_sender

MAX_TEXT_LENGTH = 10_000


def _phone(value: Any) -> str:
    return normalise_phone(value)


def _sender(value: Any) -> str:
    return normalise_sender(value)


def _country(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip().upper()
        if len(value) != 2 or not value.isalpha():
            raise ValueError("a country is an ISO 3166 alpha-2 code such as TH")
    return value


def _blank_to_none(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        return None
    return value


PhoneNumber = Annotated[str, BeforeValidator(_phone)]
Sender = Annotated[str, BeforeValidator(_sender)]
CountryCode = Annotated[str, BeforeValidator(_country)]
OptionalCountry = Annotated[CountryCode | None, BeforeValidator(_blank_to_none)]
UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]
ShortText = Annotated[str, Field(max_length=200)]


class EventKind(StrEnum):
    CALL = "call"
    MESSAGE = "message"
    PAYMENT = "payment"
    REPORT = "report"
    SIGNAL = "signal"
    SUBSCRIBER = "subscriber"


class Ingress(StrEnum):
    DOMESTIC = "domestic"
    INTERNATIONAL = "international"
    ROAMING = "roaming"


class _EventBase(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    event_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$")
    source: str | None = Field(default=None, max_length=120, description="the provider that sent it")

    @property
    def time(self) -> datetime:  # pragma: no cover - overridden
        raise NotImplementedError

    def subject(self) -> str:
        """The party this event is chiefly about (the caller, sender, payer, reported value...)."""
        raise NotImplementedError  # pragma: no cover


class CallRecord(_EventBase):
    """One call detail record (CDR), seen by the operator that carried it."""

    kind: Literal["call"] = "call"
    caller: PhoneNumber
    callee: PhoneNumber
    start: UtcDatetime
    duration_s: float = Field(ge=0, le=86_400, description="talk time; 0 when not answered")
    ring_s: float | None = Field(default=None, ge=0, le=600)
    direction: Literal["outgoing", "incoming", "forwarded"] = "outgoing"
    call_type: Literal["voice", "video", "voip"] = "voice"
    ingress: Ingress = Ingress.DOMESTIC
    caller_country: OptionalCountry = None
    callee_country: OptionalCountry = None
    imei: str | None = None
    cell_id: str | None = Field(default=None, max_length=64)

    @field_validator("imei", mode="before")
    @classmethod
    def _imei(cls, value: Any) -> Any:
        value = _blank_to_none(value)
        return None if value is None else normalise_indicator(IndicatorType.IMEI, str(value))

    @model_validator(mode="after")
    def _fill_countries(self) -> CallRecord:
        if self.caller_country is None:
            self.caller_country = country_of(self.caller)
        if self.callee_country is None:
            self.callee_country = country_of(self.callee)
        return self

    @property
    def time(self) -> datetime:
        return self.start

    def subject(self) -> str:
        return self.caller


class Message(_EventBase):
    """An SMS or chat message. The text is screened and never shared beyond the node."""

    kind: Literal["message"] = "message"
    sender: Sender
    recipient: PhoneNumber
    text: str = Field(max_length=MAX_TEXT_LENGTH)
    sent_at: UtcDatetime
    channel: Literal["sms", "chat"] = "sms"
    ingress: Ingress = Ingress.DOMESTIC
    lang: str | None = Field(default=None, max_length=8)

    @property
    def time(self) -> datetime:
        return self.sent_at

    def subject(self) -> str:
        return self.sender


class Payment(_EventBase):
    """A transfer reported by a bank or e-wallet; ``payer_phone`` links it to a subscriber."""

    kind: Literal["payment"] = "payment"
    payer_account: str
    payer_phone: PhoneNumber | None = None
    payee_account: str
    amount: Decimal = Field(gt=0, max_digits=18, decimal_places=2)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    paid_at: UtcDatetime
    channel: Literal["bank_transfer", "ewallet", "card", "crypto", "cash_deposit"] = "bank_transfer"
    new_payee: bool | None = None

    @field_validator("payer_account", "payee_account", mode="before")
    @classmethod
    def _account(cls, value: Any) -> str:
        return normalise_indicator(IndicatorType.BANK_ACCOUNT, value)

    @field_validator("payer_phone", mode="before")
    @classmethod
    def _optional_phone(cls, value: Any) -> Any:
        return _blank_to_none(value)

    @field_validator("currency", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @property
    def time(self) -> datetime:
        return self.paid_at

    def subject(self) -> str:
        return self.payee_account


class CitizenReport(_EventBase):
    """A citizen's "scam" or "not scam" report about a number, sender, URL or account."""

    kind: Literal["report"] = "report"
    reporter: PhoneNumber | None = None
    indicator_type: IndicatorType
    indicator_value: str
    verdict: Literal["scam", "not_scam"] = "scam"
    scam_type: str | None = Field(default=None, max_length=80)
    loss_amount: Decimal | None = Field(default=None, ge=0, max_digits=18, decimal_places=2)
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    reported_at: UtcDatetime
    lang: str | None = Field(default=None, max_length=8)

    @field_validator("reporter", "scam_type", "loss_amount", "currency", "lang", mode="before")
    @classmethod
    def _optional(cls, value: Any) -> Any:
        return _blank_to_none(value)

    @model_validator(mode="after")
    def _canonical_indicator(self) -> CitizenReport:
        self.indicator_value = normalise_indicator(self.indicator_type, self.indicator_value)
        return self

    @property
    def time(self) -> datetime:
        return self.reported_at

    def subject(self) -> str:
        return self.indicator_value


class ProviderSignal(_EventBase):
    """A signal from a bank, the post or an internet firm about a subscriber.

    ``signal_type`` examples: ``url_visit``, ``remote_access_app_installed``, ``new_payee``,
    ``parcel_redirect``, ``bulk_sim_parcel``, ``sim_swap``, ``account_takeover``.
    """

    kind: Literal["signal"] = "signal"
    provider: Literal["telco", "bank", "post", "internet", "police"]
    signal_type: str = Field(min_length=2, max_length=60, pattern=r"^[a-z][a-z0-9_]*$")
    subscriber: PhoneNumber | None = None
    indicator_type: IndicatorType | None = None
    indicator_value: str | None = None
    observed_at: UtcDatetime
    detail: dict[str, str | int | float | bool | None] = Field(default_factory=dict)

    @field_validator("subscriber", "indicator_type", "indicator_value", mode="before")
    @classmethod
    def _optional(cls, value: Any) -> Any:
        return _blank_to_none(value)

    @model_validator(mode="after")
    def _canonical_indicator(self) -> ProviderSignal:
        if (self.indicator_type is None) != (self.indicator_value is None):
            raise ValueError("indicator_type and indicator_value come together")
        if self.indicator_type is not None and self.indicator_value is not None:
            self.indicator_value = normalise_indicator(self.indicator_type, self.indicator_value)
        if self.subscriber is None and self.indicator_value is None:
            raise ValueError("a signal names a subscriber, an indicator or both")
        if len(self.detail) > 32:
            raise ValueError("detail has at most 32 entries")
        return self

    @property
    def time(self) -> datetime:
        return self.observed_at

    def subject(self) -> str:
        return self.subscriber or str(self.indicator_value)


class SubscriberRecord(_EventBase):
    """A subscriber as the operator knows it: activation date (SIM age), home region, language."""

    kind: Literal["subscriber"] = "subscriber"
    number: PhoneNumber
    activated_at: UtcDatetime
    country: CountryCode
    home_region: str | None = Field(default=None, max_length=80, description="province/city code of the centre hierarchy")
    language: str | None = Field(default=None, max_length=8)
    kyc_verified: bool = True
    updated_at: UtcDatetime | None = None

    @field_validator("home_region", "language", mode="before")
    @classmethod
    def _optional(cls, value: Any) -> Any:
        return _blank_to_none(value)

    @property
    def time(self) -> datetime:
        return self.updated_at or self.activated_at

    def subject(self) -> str:
        return self.number


Event = Annotated[
    CallRecord | Message | Payment | CitizenReport | ProviderSignal | SubscriberRecord,
    Field(discriminator="kind"),
]
EVENT_MODELS: dict[str, type[_EventBase]] = {
    "call": CallRecord,
    "message": Message,
    "payment": Payment,
    "report": CitizenReport,
    "signal": ProviderSignal,
    "subscriber": SubscriberRecord,
}
_EVENT_ADAPTER: TypeAdapter[Any] = TypeAdapter(Event)


def parse_event(data: dict[str, Any]) -> CallRecord | Message | Payment | CitizenReport | ProviderSignal | SubscriberRecord:
    """Validate one event given as a mapping with a ``kind`` field."""
    return _EVENT_ADAPTER.validate_python(data)  # type: ignore[no-any-return]
