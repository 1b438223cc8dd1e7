INSERT INTO box_places (box_id, place, since) VALUES (2, 'safe-1', 1700006000000);
INSERT INTO place_events (id, box_id, kind, place, actor, reason, at) VALUES (1, 2, 'in', 'safe-1', 'desk', 'original deed', 1700006000000);
