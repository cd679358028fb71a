"""What the node publishes: statistics (``statistics``) and scam bulletins (``bulletins``).

Statistics are computed from the stored records (warnings, cases, alerts) and from the
capabilities' own tables when those are installed; public figures suppress small counts.
Bulletins are drafted from trending scam types in ten languages, approved by an analyst and
then published on the portal, over the API and as an Atom feed.
"""
