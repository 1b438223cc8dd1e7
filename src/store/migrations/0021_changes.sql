-- The room's change feed, for a site's replica of every room: each change to a box's
-- record, binding, place, flags, loans or disposal gives the box the next sequence number,
-- in the same transaction as the change (the triggers below). One row per box, its latest
-- number: a reader asks for the boxes changed since the number it holds and gets each as
-- it is now, so catching up costs one row per box changed, however often it changed.
CREATE TABLE changes (
    box_id  INTEGER PRIMARY KEY REFERENCES boxes (id),
    seq     INTEGER NOT NULL UNIQUE
) STRICT;

-- The boxes already there, in the order they came.
INSERT INTO changes (box_id, seq) SELECT id, row_number() OVER (ORDER BY id) FROM boxes;

-- The next number: one more than the largest, `max(seq)` alone in its SELECT so that SQLite
-- finds it at the end of the index on seq (inside coalesce() it would scan). An upsert,
-- not INSERT OR REPLACE: the statement that fires a trigger imposes its own conflict
-- policy on OR clauses in the trigger.
CREATE TRIGGER changes_boxes_insert AFTER INSERT ON boxes BEGIN
    INSERT INTO changes (box_id, seq) VALUES (NEW.id, coalesce((SELECT max(seq) FROM changes), 0) + 1)
        ON CONFLICT (box_id) DO UPDATE SET seq = excluded.seq;
END;
CREATE TRIGGER changes_boxes_update AFTER UPDATE ON boxes BEGIN
    INSERT INTO changes (box_id, seq) VALUES (NEW.id, coalesce((SELECT max(seq) FROM changes), 0) + 1)
        ON CONFLICT (box_id) DO UPDATE SET seq = excluded.seq;
END;

-- bindings: where it is (not when a sweep last saw it there: a sweep would renumber
-- every box it saw).
CREATE TRIGGER changes_bindings_insert AFTER INSERT ON bindings BEGIN
    INSERT INTO changes (box_id, seq) VALUES (NEW.box_id, coalesce((SELECT max(seq) FROM changes), 0) + 1)
        ON CONFLICT (box_id) DO UPDATE SET seq = excluded.seq;
END;
CREATE TRIGGER changes_bindings_update AFTER UPDATE OF shelf_id, source, confidence, since ON bindings BEGIN
    INSERT INTO changes (box_id, seq) VALUES (NEW.box_id, coalesce((SELECT max(seq) FROM changes), 0) + 1)
        ON CONFLICT (box_id) DO UPDATE SET seq = excluded.seq;
END;
CREATE TRIGGER changes_bindings_delete AFTER DELETE ON bindings BEGIN
    INSERT INTO changes (box_id, seq) VALUES (OLD.box_id, coalesce((SELECT max(seq) FROM changes), 0) + 1)
        ON CONFLICT (box_id) DO UPDATE SET seq = excluded.seq;
END;

-- box_places: the place off the shelving it is in.
CREATE TRIGGER changes_box_places_insert AFTER INSERT ON box_places BEGIN
    INSERT INTO changes (box_id, seq) VALUES (NEW.box_id, coalesce((SELECT max(seq) FROM changes), 0) + 1)
        ON CONFLICT (box_id) DO UPDATE SET seq = excluded.seq;
END;
CREATE TRIGGER changes_box_places_update AFTER UPDATE ON box_places BEGIN
    INSERT INTO changes (box_id, seq) VALUES (NEW.box_id, coalesce((SELECT max(seq) FROM changes), 0) + 1)
        ON CONFLICT (box_id) DO UPDATE SET seq = excluded.seq;
END;
CREATE TRIGGER changes_box_places_delete AFTER DELETE ON box_places BEGIN
    INSERT INTO changes (box_id, seq) VALUES (OLD.box_id, coalesce((SELECT max(seq) FROM changes), 0) + 1)
        ON CONFLICT (box_id) DO UPDATE SET seq = excluded.seq;
END;

-- box_flags: lost, or left through the gate.
CREATE TRIGGER changes_box_flags_insert AFTER INSERT ON box_flags BEGIN
    INSERT INTO changes (box_id, seq) VALUES (NEW.box_id, coalesce((SELECT max(seq) FROM changes), 0) + 1)
        ON CONFLICT (box_id) DO UPDATE SET seq = excluded.seq;
END;
CREATE TRIGGER changes_box_flags_update AFTER UPDATE ON box_flags BEGIN
    INSERT INTO changes (box_id, seq) VALUES (NEW.box_id, coalesce((SELECT max(seq) FROM changes), 0) + 1)
        ON CONFLICT (box_id) DO UPDATE SET seq = excluded.seq;
END;
CREATE TRIGGER changes_box_flags_delete AFTER DELETE ON box_flags BEGIN
    INSERT INTO changes (box_id, seq) VALUES (OLD.box_id, coalesce((SELECT max(seq) FROM changes), 0) + 1)
        ON CONFLICT (box_id) DO UPDATE SET seq = excluded.seq;
END;

-- loan_boxes: its loans and their returns.
CREATE TRIGGER changes_loan_boxes_insert AFTER INSERT ON loan_boxes BEGIN
    INSERT INTO changes (box_id, seq) VALUES (NEW.box_id, coalesce((SELECT max(seq) FROM changes), 0) + 1)
        ON CONFLICT (box_id) DO UPDATE SET seq = excluded.seq;
END;
CREATE TRIGGER changes_loan_boxes_update AFTER UPDATE ON loan_boxes BEGIN
    INSERT INTO changes (box_id, seq) VALUES (NEW.box_id, coalesce((SELECT max(seq) FROM changes), 0) + 1)
        ON CONFLICT (box_id) DO UPDATE SET seq = excluded.seq;
END;
CREATE TRIGGER changes_loan_boxes_delete AFTER DELETE ON loan_boxes BEGIN
    INSERT INTO changes (box_id, seq) VALUES (OLD.box_id, coalesce((SELECT max(seq) FROM changes), 0) + 1)
        ON CONFLICT (box_id) DO UPDATE SET seq = excluded.seq;
END;

-- boxes_disposed: destroyed.
CREATE TRIGGER changes_boxes_disposed_insert AFTER INSERT ON boxes_disposed BEGIN
    INSERT INTO changes (box_id, seq) VALUES (NEW.box_id, coalesce((SELECT max(seq) FROM changes), 0) + 1)
        ON CONFLICT (box_id) DO UPDATE SET seq = excluded.seq;
END;

-- A loan's state and due day are part of each of its boxes (locate says a box is out, to
-- whom, until when). Numbered one after another, in the order of the boxes.
CREATE TRIGGER changes_loans_update AFTER UPDATE OF state, due, borrower ON loans BEGIN
    INSERT INTO changes (box_id, seq)
        SELECT box_id, coalesce((SELECT max(seq) FROM changes), 0) + row_number() OVER (ORDER BY box_id)
        FROM loan_boxes WHERE loan_id = NEW.id
        ON CONFLICT (box_id) DO UPDATE SET seq = excluded.seq;
END;
