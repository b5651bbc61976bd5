-- A credit-normal revenue account for the PSP fee a customer pays on top of the amount
-- (Novasend's `chargedAmount` = amount + fee): the customer's whole payment is booked in
-- psp_clearing, and the fee the PSP keeps is recovered rather than an expense of ours.
ALTER TABLE account DROP CONSTRAINT account_kind_check;
ALTER TABLE account ADD CONSTRAINT account_kind_check
    CHECK (kind IN ('psp_clearing', 'merchant_available', 'platform_fee_revenue',
                    'psp_fee_expense', 'psp_fee_recovered', 'refunds'));

DO $$
DECLARE
    old_check text;
BEGIN
    SELECT conname INTO old_check FROM pg_constraint
     WHERE conrelid = 'account'::regclass AND contype = 'c'
       AND pg_get_constraintdef(oid) LIKE '%normal_side%credit%merchant_available%';
    EXECUTE format('ALTER TABLE account DROP CONSTRAINT %I', old_check);
END $$;
ALTER TABLE account ADD CONSTRAINT account_normal_side_of_kind_check
    CHECK ((normal_side = 'credit')
           = (kind IN ('merchant_available', 'platform_fee_revenue', 'psp_fee_recovered')));
