"""Typed domain records shared by every capability.

``phone`` normalises numbers to E.164; ``indicators`` holds fraud indicators with their TLP 2.0
marking; ``events`` the provider events (calls, messages, payments, citizen reports, provider
signals, subscriber records); ``records`` the node's own products: signals, alerts, warnings,
cases and centres. Capabilities exchange these records, not each other's internals.
"""

from forewarn.model.events import (
    EVENT_MODELS,
    CallRecord,
    CitizenReport,
    Event,
    EventKind,
    Message,
    Payment,
    ProviderSignal,
    SubscriberRecord,
    parse_event,
)
from forewarn.model.indicators import TLP, Indicator, IndicatorType, InvalidIndicator, normalise_indicator
from forewarn.model.phone import InvalidPhoneNumber, normalise_phone, normalise_sender
from forewarn.model.records import Alert, Case, Centre, Signal, Warning

__all__ = [
    "EVENT_MODELS", "Alert", "CallRecord", "Case", "Centre", "CitizenReport", "Event", "EventKind",
    "Indicator", "IndicatorType", "InvalidIndicator", "InvalidPhoneNumber", "Message", "Payment",
    "ProviderSignal", "Signal", "SubscriberRecord", "TLP", "Warning", "normalise_indicator",
    "normalise_phone", "normalise_sender", "parse_event",
]
