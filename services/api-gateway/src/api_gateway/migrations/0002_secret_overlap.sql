-- Until when the previous webhook secret still signs, so a later endpoint change keeps it.
ALTER TABLE merchant ADD COLUMN secret_overlap_until timestamptz;
