"""One router per file: health (no key), score, accounts, rings, labels (under ``API_PREFIX``)."""

#: The version prefix of every business route. Routers carry it themselves (rather than through
#: ``include_router(prefix=...)``) so that a request's matched route names its full template,
#: which the latency metrics use as their label.
API_PREFIX = "/v1"
