INSERT INTO tokens (id, name, role, hash, created_at, revoked_at) VALUES
    (1, 'desk', 'operator', 'aa01', 1700000000000, NULL),
    (2, 'old', 'admin', 'aa02', 1700000000000, 1700000500000);
INSERT INTO audit (id, at, actor, kind, action, outcome, detail) VALUES
    (1, 1700000000000, 'cli', 'token', 'create desk', 'done', ''),
    (2, 1700000300000, 'desk', 'motion', 'open range 1 aisle 2', 'refused: aisle_occupied', 'a person in aisle 2');
