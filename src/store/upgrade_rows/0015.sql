INSERT INTO series_numbers (series, last) VALUES ('0451-H-001', 2);
INSERT INTO transfers (id, office, deliverer, completed_on, deadline, state, listed_by, listed_at, receiver, received_at, accepted_by, accepted_at, note) VALUES
    (1, '营业厅', 'Liu', '2023-10-01', '2024-03-31', 'received', 'desk', 1700004000000, 'desk', 1700005000000, NULL, NULL, '');
INSERT INTO transfer_items (transfer_id, line, series, title, epc, barcode, width_mm, fields, extra, found, note, archive_no) VALUES
    (1, 1, '0451-H-001', 'new customer', NULL, NULL, NULL, '{}', 0, 'received', '', NULL),
    (1, 2, '0451-H-001', 'not listed', NULL, NULL, NULL, '{}', 1, 'damaged', 'torn', NULL);
