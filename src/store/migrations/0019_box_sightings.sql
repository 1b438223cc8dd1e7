-- A box's page lists what the stocktakes found amiss with it. Only those findings are
-- indexed by box: a room's sweep writes a 'present' row for every box, and a random-key
-- index over all of them would slow every sweep's report; when a box was last seen
-- present is its binding's last_seen.
CREATE INDEX sweep_findings_box ON sweep_findings (archive_no) WHERE status != 'present';
