"""Header names the handlers read and write on every request, as multidict's ``istr``.

aiohttp keeps headers in case-insensitive multidicts, which case-fold a plain ``str`` name on
every lookup and every insertion (a response's header dict is copied into one); an ``istr``
carries its folded form, so that work is done once here. The names keep their spelling on the wire.
"""

from __future__ import annotations

from multidict import istr

X_REQUEST_ID = istr("X-Request-Id")
API_KEY = istr("api-key")
X_MODELGATE_DEPLOYMENT = istr("X-Modelgate-Deployment")
X_MODELGATE_ATTEMPTS = istr("X-Modelgate-Attempts")
