INSERT INTO box_changes (id, box_id, field, before, after, actor, reason, at) VALUES (1, 3, 'title', '', '客户档案', 'desk', 'typo', 1700001000000);
INSERT INTO box_field_values (key, value, box_id) VALUES ('customer_no', 'C1', 1), ('account_closed', '2010-05-01', 3);
INSERT INTO box_documents (id, box_id, item_no, title, pages, date, e_file, e_uri, actor, added_at) VALUES (1, 1, 1, '用电申请书', 3, '2009-01-02', 'EF-1', 'ecm://EF-1', 'desk', 1700001000000);
INSERT INTO disposals (id, state, reason, proposed_by, proposed_at, decided_by, decided_at, decision_note, carried_out_by, carried_out_at, method, witness) VALUES
    (1, 'carried_out', 'retention expired', 'desk', 1700001000000, 'head', 1700002000000, 'ok', 'desk', 1700003000000, 'shredded', 'Zhao');
INSERT INTO disposal_boxes (disposal_id, box_id, archive_no, title, class, due, shelf) VALUES (1, 3, '0451-L-002-00001', '客户档案', 'y10', '2020-05-01', NULL);
INSERT INTO boxes_disposed (box_id, disposal_id, at) VALUES (3, 1, 1700003000000);
