"""Scenario configuration: sizes, seed, time window and behaviour rates, validated with clear errors."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from forewarn.sim.geography import HOME

MAX_SUBSCRIBERS = 5_000_000
MAX_DAYS = 90


class ScenarioConfigError(ValueError):
    """A scenario configuration that cannot be simulated; the message lists every problem."""


class ScenarioConfig(BaseModel):
    """What to simulate. Every rate is per home subscriber per day unless said otherwise."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = Field(default=7, ge=0, lt=2**63, description="same seed, same scenario")
    subscribers: int = Field(default=20_000, ge=200, le=MAX_SUBSCRIBERS, description="home subscribers")
    days: int = Field(default=3, ge=1, le=MAX_DAYS)
    start: date = Field(default=date(2025, 3, 3), description="first day (UTC midnight)")
    fraud_rate: float = Field(default=0.005, ge=0.0, le=0.05,
                              description="fraud numbers as a share of home subscribers (0 = no fraud)")
    countries: tuple[str, ...] = Field(default=HOME, min_length=1, description="home countries simulated")
    calls_per_day: float = Field(default=4.0, gt=0, le=100)
    messages_per_day: float = Field(default=1.5, ge=0, le=100)
    payments_per_day: float = Field(default=0.3, ge=0, le=20)
    victim_rate: float = Field(default=0.03, ge=0, le=1, description="answered scam calls that hook the callee")
    click_rate: float = Field(default=0.02, ge=0, le=1, description="scam SMS whose link is visited")
    pay_after_click_rate: float = Field(default=0.45, ge=0, le=1)
    report_rate: float = Field(default=0.35, ge=0, le=1, description="victims who report to the police portal")
    chunk_rows: int = Field(default=400_000, ge=1_000, le=10_000_000, description="rows per Parquet row group")

    @field_validator("countries", mode="before")
    @classmethod
    def _countries(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part for part in value.replace(" ", ",").split(",") if part]
        if isinstance(value, list | tuple):
            codes = [str(v).strip().upper() for v in value]
            unknown = [c for c in codes if c not in HOME]
            if unknown:
                raise ValueError(f"unknown home countries {unknown}; choose from {', '.join(HOME)}")
            if len(set(codes)) != len(codes):
                raise ValueError("countries are listed twice")
            return tuple(c for c in HOME if c in codes)
        return value

    @model_validator(mode="after")
    def _enough_people(self) -> ScenarioConfig:
        if self.subscribers < 100 * len(self.countries):
            raise ValueError(f"at least 100 subscribers per home country are needed ({100 * len(self.countries)})")
        return self

    @property
    def start_at(self) -> datetime:
        return datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC)

    @property
    def end_at(self) -> datetime:
        return self.start_at + timedelta(days=self.days)

    @classmethod
    def build(cls, **values: object) -> ScenarioConfig:
        """Validate ``values``; raise :class:`ScenarioConfigError` naming each bad field and why."""
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                where = ".".join(str(p) for p in err["loc"]) or "config"
                problems.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
            raise ScenarioConfigError("bad scenario configuration: " + "; ".join(problems)) from None
