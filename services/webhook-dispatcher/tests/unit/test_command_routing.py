from typing import get_args

from fluxpay_common.messages import WebhooksCommand
from webhook_dispatcher.service_layer.merchant_commands import COMMAND_HANDLERS, SIGNING_HANDLERS


def test_every_command_type_of_the_contract_has_a_handler() -> None:
    types = get_args(WebhooksCommand.model_fields["type"].annotation)
    assert set(COMMAND_HANDLERS) | set(SIGNING_HANDLERS) == set(types)
    assert not set(COMMAND_HANDLERS) & set(SIGNING_HANDLERS)
