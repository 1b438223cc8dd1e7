INSERT INTO alarms (id, kind, zone, sensor, state, raised_at, message, params) VALUES
    (3, 'gate', 'gate-1', '0451-H-001-00002', 'active', 1700007000000, 'box left without a loan', '{"box":"0451-H-001-00002","gate":"gate-1"}');
