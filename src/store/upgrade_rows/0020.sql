INSERT INTO sweep_unread (sweep_id, shelf, reason, code, reader) VALUES (1, 'R1-C2-L-S1-L1', 'no antenna', 'no_antenna', 'reader-1');
