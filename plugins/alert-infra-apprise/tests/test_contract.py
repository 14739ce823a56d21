"""The transport contract kit (alert_infra.testing.contract), unchanged, run against the apprise bridge.

The kit aims the channel at a real HTTPS fake on 127.0.0.1 with a trustme CA (``REQUESTS_CA_BUNDLE``,
which apprise's ``requests`` calls honour): ``jsons://`` is apprise's JSON service over HTTPS, so
every kit scenario (refused, silent server, 5xx, 429, 4xx, the secret echoed in the error body, the
long alert, close) runs through real apprise. Two adapter settings differ from an HTTP plugin's:

* ``expected_retry_after = None``: apprise never exposes ``Retry-After`` (its result has no headers),
  so a 429 is retryable without a hint; the backoff policy decides the wait.
* ``invalid_options``: the kit's default turns an ``https://`` URL option into ``http://``; an apprise
  URL has its own schemes (``json://`` is plain HTTP on purpose), so the refused value is a URL no
  apprise service accepts.
"""

from __future__ import annotations

from alert_infra.testing.contract import TransportContract

TOKEN = "kitAppriseToken0123456789abcdef"


class TestAppriseContract(TransportContract):
    transport_type = "apprise"
    expected_retry_after = None

    def options(self, base_url):
        return {"url": "jsons://" + base_url[len("https://") :] + f"/hooks/{TOKEN}"}

    def success(self, request):
        return 200, {}, {"ok": True}

    def invalid_options(self, base_url):
        return {"url": "nosuchservice://kit-secret-host-0123/xyz", "timeout": -1}

    def check_request(self, request, alert):
        payload = request.json()
        assert len(payload["message"]) <= 32768 and len(payload["title"]) <= 250
