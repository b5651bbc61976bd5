"""The chart of accounts: one set per environment and currency, each account made on first use.

Sign convention (the database stores the same): a posting's `amount_minor` is positive for a
debit and negative for a credit, so every entry's postings sum to zero and an account's raw
balance is the sum of its postings. Debit-normal accounts (assets, expenses) read that sum as
is; credit-normal ones (what we owe merchants, our revenue) read its negation.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum


class AccountKind(StrEnum):
    # Asset: money a PSP collected for us and has not yet settled, one account per provider.
    PSP_CLEARING = "psp_clearing"
    # Liability: what we owe a merchant, one account per merchant.
    MERCHANT_AVAILABLE = "merchant_available"
    # Revenue: the platform's fee on each payment.
    PLATFORM_FEE_REVENUE = "platform_fee_revenue"
    # Expense: what PSPs charge us per payment.
    PSP_FEE_EXPENSE = "psp_fee_expense"
    # Revenue (contra-expense): the PSP fee a customer paid on top of the amount (Novasend's
    # `chargedAmount` = amount + fee), so the fee the PSP keeps costs the platform nothing.
    PSP_FEE_RECOVERED = "psp_fee_recovered"
    # Transit: every refund passes through it, so its debit volume is the refunds paid out
    # and its balance is always zero; a non-zero balance is a bug that reconcile reports.
    REFUNDS = "refunds"


CREDIT_NORMAL = frozenset(
    {
        AccountKind.MERCHANT_AVAILABLE,
        AccountKind.PLATFORM_FEE_REVENUE,
        AccountKind.PSP_FEE_RECOVERED,
    }
)


@dataclass(frozen=True)
class Account:
    environment: str
    currency: str
    kind: AccountKind
    # The provider of a clearing account, the merchant of an available-balance account.
    qualifier: str | None = None

    @property
    def code(self) -> str:
        return f"{self.kind.value}:{self.qualifier}" if self.qualifier else self.kind.value

    @property
    def is_credit_normal(self) -> bool:
        return self.kind in CREDIT_NORMAL

    @property
    def merchant_id(self) -> uuid.UUID | None:
        if self.kind is AccountKind.MERCHANT_AVAILABLE and self.qualifier:
            return uuid.UUID(self.qualifier)
        return None

    @property
    def provider(self) -> str | None:
        return self.qualifier if self.kind is AccountKind.PSP_CLEARING else None


@dataclass(frozen=True)
class Chart:
    """The accounts of one environment and currency."""

    environment: str
    currency: str

    def psp_clearing(self, provider: str) -> Account:
        return self._account(AccountKind.PSP_CLEARING, provider)

    def merchant_available(self, merchant_id: uuid.UUID) -> Account:
        return self._account(AccountKind.MERCHANT_AVAILABLE, str(merchant_id))

    def platform_fee_revenue(self) -> Account:
        return self._account(AccountKind.PLATFORM_FEE_REVENUE)

    def psp_fee_expense(self) -> Account:
        return self._account(AccountKind.PSP_FEE_EXPENSE)

    def psp_fee_recovered(self) -> Account:
        return self._account(AccountKind.PSP_FEE_RECOVERED)

    def refunds(self) -> Account:
        return self._account(AccountKind.REFUNDS)

    def _account(self, kind: AccountKind, qualifier: str | None = None) -> Account:
        return Account(self.environment, self.currency, kind, qualifier)


def natural_balance(account: Account, raw_balance_minor: int) -> int:
    """The balance as the account's owner reads it: positive when it holds its normal side."""
    return -raw_balance_minor if account.is_credit_normal else raw_balance_minor
