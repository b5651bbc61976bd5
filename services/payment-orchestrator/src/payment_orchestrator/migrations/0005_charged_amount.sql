-- What the customer paid in all when the PSP says (Novasend's `chargedAmount`: amount + a
-- fee borne by the customer), in minor units; booked by the ledger from the completed event.
ALTER TABLE payment ADD COLUMN charged_amount_minor bigint
    CHECK (charged_amount_minor IS NULL OR charged_amount_minor > 0);
