"""The node's pages: the public portal at ``/`` and the analyst console at ``/console/``.

``pages.router`` is the one router the app includes; ``portal`` and ``console`` hold the page
routes, ``panels`` one small data-access function per console panel, ``lookup`` the portal's
policy-bound answers, ``svg`` the server-side drawings (charts, call graphs, cross-border flows),
``i18n`` the interface catalogs, ``session`` the signed console session and ``ratelimit`` the
per-client limits of the portal. Everything a page needs is served by the node itself.
"""
