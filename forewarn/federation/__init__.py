"""Cross-border federation: sovereign nodes sharing fraud indicators over STIX 2.1 / TAXII 2.1.

Each country's node decides what it shares with whom (:mod:`policy`), maps its indicators to STIX
(:mod:`stix`), serves them from a TAXII 2.1 server (``forewarn/api/routes/taxii.py``) built on the
outbox (:mod:`outbox`), pulls and pushes with its client (:mod:`client`), imports partner bundles
into provenance and an approval queue (:mod:`inbox`), signs every bundle (:mod:`signing`) and can
match lists without revealing them (:mod:`psi`). :mod:`demo` runs three nodes on loopback.
"""
