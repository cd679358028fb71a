"""SIP integration: the shipped Kamailio configuration that asks the decision API per INVITE.

:func:`render_kamailio_config` fills in the API's address and telco key, the SIP listen address,
the upstream hop for allowed calls and the source addresses of international trunks (calls from
them are asked about with ``ingress: international``).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

TEMPLATE = Path(__file__).parent / "kamailio.cfg"
_HOSTPORT = re.compile(r"^[A-Za-z0-9.\-]+:[0-9]{1,5}$")
_KEY = re.compile(r"^[A-Za-z0-9_\-]*$")


class SipConfigError(ValueError):
    """A setting that cannot go into the Kamailio configuration; the message says which."""


@dataclass(frozen=True)
class KamailioSettings:
    api_url: str = "http://127.0.0.1:8000"
    api_key: str = ""
    listen: str = "127.0.0.1:5060"
    upstream: str = "127.0.0.1:5080"
    international_trunks: tuple[str, ...] = ()
    children: int = 4


def render_kamailio_config(settings: KamailioSettings) -> str:
    """The configuration text; every value is checked so that nothing can break out of its string."""
    if not re.match(r"^https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?$", settings.api_url.rstrip("/")):
        raise SipConfigError(f"api_url {settings.api_url!r} must be http(s)://host[:port] without a path")
    if not settings.api_key:
        raise SipConfigError("give the telco API key (forewarn keys create --role telco)")
    if not _KEY.match(settings.api_key):
        raise SipConfigError("the API key has unexpected characters")
    for name in ("listen", "upstream"):
        if not _HOSTPORT.match(getattr(settings, name)):
            raise SipConfigError(f"{name} must be host:port")
    checks = []
    for trunk in settings.international_trunks:
        try:
            ipaddress.ip_address(trunk)
        except ValueError:
            raise SipConfigError(f"international trunk {trunk!r} is not an IP address") from None
        checks.append(f'\tif ($si == "{trunk}") {{\n\t\t$var(ingress) = "international";\n\t}}')
    if not 1 <= settings.children <= 64:
        raise SipConfigError("children must be 1-64")
    text = TEMPLATE.read_text(encoding="utf-8")
    for placeholder, value in (("@@API_URL@@", settings.api_url.rstrip("/")), ("@@API_KEY@@", settings.api_key),
                               ("@@LISTEN@@", settings.listen), ("@@UPSTREAM@@", settings.upstream),
                               ("@@CHILDREN@@", str(settings.children)),
                               ("@@TRUNK_CHECKS@@", "\n".join(checks) if checks else "\t# no international trunks")):
        text = text.replace(placeholder, value)
    return text
