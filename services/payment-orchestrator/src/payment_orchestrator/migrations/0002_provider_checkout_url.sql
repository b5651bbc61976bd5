-- A provider's own payment page (Stripe Checkout, a bank's page): where the customer pays.
ALTER TABLE payment ADD COLUMN provider_checkout_url text;
