INSERT INTO tokens (id, name, role, hash, created_at, revoked_at, expires_at) VALUES (4, 'visitor', 'viewer', 'aa04', 1700000000000, NULL, 1800000000000);
