-- Shelves a sweep read a second time because a box on them was in doubt.
ALTER TABLE sweeps ADD COLUMN second_look INTEGER NOT NULL DEFAULT 0;
