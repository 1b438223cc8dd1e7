INSERT INTO env_points (id, name) VALUES (1, 'th-a');
INSERT INTO env_raw (point, at, t, h, v) VALUES (1, 1700000000000, 215, 512, NULL), (1, 1700000005000, 216, 513, NULL);
INSERT INTO env_minute (point, at, n, t_min, t_sum, t_max, h_min, h_sum, h_max, v_min, v_sum, v_max) VALUES (1, 1700000000, 2, 215, 431, 216, 512, 1025, 513, NULL, NULL, NULL);
INSERT INTO env_hour (point, at, n, t_min, t_sum, t_max, h_min, h_sum, h_max, v_min, v_sum, v_max) VALUES (1, 1699999200, 2, 215, 431, 216, 512, 1025, 513, NULL, NULL, NULL);
INSERT INTO alarms (id, kind, zone, sensor, state, raised_at, message, acked_at, acked_by, ack_note, cleared_at) VALUES
    (1, 'humidity_high', 'a', 'th-a', 'cleared', 1700000000000, 'th-a: 62.1 % RH above 60', 1700000060000, 'desk', 'dehumidifier on', 1700000600000),
    (2, 'smoke', 'a', 'smoke-a', 'active', 1700000700000, 'smoke-a: smoke', NULL, NULL, NULL, NULL);
