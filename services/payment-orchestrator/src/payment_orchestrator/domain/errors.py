"""Why the orchestrator refuses a command: domain exceptions with a stable code.

The gateway maps each code to its HTTP status (`api_gateway.errors.STATUS_BY_CODE`) and
renders the seed's ApiError; docs/errors.md lists every code. Nothing here knows HTTP.
"""

from __future__ import annotations


class CommandRefused(Exception):
    """A merchant's command that cannot be applied as asked; nothing was changed."""

    code: str = "command_refused"
    param: str | None = None
    # The refusal is ours (a dependency did not answer), not the request's.
    server_side: bool = False

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if param is not None:
            self.param = param


class PaymentNotFound(CommandRefused):
    code, param = "payment_not_found", "reference_or_id"

    def __init__(self, reference_or_id: str) -> None:
        super().__init__(f"No payment '{reference_or_id}' for this merchant in this environment.")


class ReferenceAlreadyExists(CommandRefused):
    code, param = "reference_already_exists", "reference"


class OperatorUnavailable(CommandRefused):
    code, param = "operator_unavailable", "operator"


class PaymentNotAwaitingOtp(CommandRefused):
    code = "payment_not_awaiting_otp"


class PaymentNotAwaitingPayment(CommandRefused):
    code = "payment_not_awaiting_payment"


class PaymentNotCancellable(CommandRefused):
    code = "payment_not_cancellable"


class OtpNotReady(CommandRefused):
    code, param = "otp_not_ready", "otp"


class OtpInvalid(CommandRefused):
    code, param = "otp_invalid", "otp"


class OtpAttemptsExceeded(CommandRefused):
    code, param = "otp_attempts_exceeded", "otp"


class ProviderUnavailable(CommandRefused):
    code, server_side = "provider_unavailable", True


class PaymentNotRefundable(CommandRefused):
    code = "payment_not_refundable"


class RefundAlreadyPending(CommandRefused):
    code = "refund_already_pending"


class AmountInvalid(CommandRefused):
    code, param = "amount_invalid", "amount"


class RefundExceedsPayment(CommandRefused):
    code, param = "refund_exceeds_payment", "amount"


class InsufficientBalance(CommandRefused):
    code, param = "insufficient_balance", "amount"


class BalanceUnavailable(CommandRefused):
    code, server_side = "balance_unavailable", True


class InvalidStartingAfter(CommandRefused):
    code, param = "invalid_starting_after", "starting_after"

    def __init__(self) -> None:
        super().__init__("'starting_after' is not an object of this list.")
