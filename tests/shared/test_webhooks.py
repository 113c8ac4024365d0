import json

from standardwebhooks import Webhook

from hitl_shared.webhooks import headers

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_signature_verifies_with_the_standardwebhooks_package() -> None:
    body = json.dumps({"type": "item.completed", "data": {"id": "x"}}).encode()
    import time

    ts = int(time.time())
    h = headers(SECRET, "msg_1", ts, body)
    payload = Webhook(SECRET).verify(body, h)
    assert payload["data"]["id"] == "x"


def test_tampered_body_fails_verification() -> None:
    import time

    import pytest
    from standardwebhooks.webhooks import WebhookVerificationError

    body = b'{"a":1}'
    h = headers(SECRET, "msg_2", int(time.time()), body)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(b'{"a":2}', h)
