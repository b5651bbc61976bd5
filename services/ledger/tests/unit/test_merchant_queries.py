"""The bodies the gateway renders for GET /api/v1/balance and /balance/transactions."""

from __future__ import annotations

import uuid

import pytest
from fluxpay_testing.ledger import NOW

from ledger.queries import BalanceTransaction, TransactionPage
from ledger.service_layer.merchant_queries import balance_body, transactions_body, whole_major


def test_balance_lists_each_currency_in_major_and_minor_units() -> None:
    body = balance_body("test", {"XOF": 295_598, "GHS": 1_000})
    assert body == {
        "object": "balance",
        "environment": "test",
        "available": [
            {"currency": "GHS", "amount": 10, "amount_minor": 1_000},
            {"currency": "XOF", "amount": 2955, "amount_minor": 295_598},
        ],
    }


@pytest.mark.parametrize(("minor", "major"), [(0, 0), (199, 1), (-199, -1), (-200, -2)])
def test_whole_major_truncates_toward_zero(minor: int, major: int) -> None:
    assert whole_major(minor) == major


def test_transactions_are_a_list_with_has_more() -> None:
    refund = BalanceTransaction(
        id=uuid.uuid4(),
        kind="refund",
        payment_id=uuid.uuid4(),
        refund_id=uuid.uuid4(),
        reference="refund-1",
        currency="XOF",
        amount_minor=-100_000,
        fee_minor=0,
        net_minor=-100_000,
        late_success=False,
        effective_at=NOW,
        created_at=NOW,
    )
    body = transactions_body(TransactionPage([refund], has_more=True))
    assert body["object"] == "list" and body["has_more"] is True
    [item] = body["data"]
    assert item["type"] == "refund" and item["amount"] == -1000
    assert item["refund_id"] == str(refund.refund_id) and item["created_at"] == NOW.isoformat()
