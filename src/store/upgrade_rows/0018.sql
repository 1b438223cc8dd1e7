INSERT INTO loan_boxes (loan_id, box_id, inspection, note, returned_at, settled) VALUES (2, 1, 'pages_missing', 'p. 3', 1700000900000, 'lost');
INSERT INTO box_flags (box_id, state, since, note) VALUES (1, 'lost', 1700008000000, 'loan 2');
