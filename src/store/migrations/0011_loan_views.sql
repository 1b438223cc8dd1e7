-- What "open" and "out" mean for a loan, written once; the code asks these views.

-- Loans that hold their boxes: no other loan may take them.
CREATE VIEW loans_open AS
    SELECT * FROM loans WHERE state IN ('requested', 'approved', 'checked_out', 'return_refused');

-- Loans whose boxes are out of the shelves (checked out, or back but refused at return).
CREATE VIEW loans_out AS
    SELECT * FROM loans WHERE state IN ('checked_out', 'return_refused');

-- Each box held by an open loan now, and each box out now, with its loan.
CREATE VIEW boxes_held AS
    SELECT lb.box_id AS box_id, l.id AS loan_id, l.state AS state, l.borrower AS borrower
    FROM loan_boxes lb JOIN loans_open l ON l.id = lb.loan_id
    WHERE lb.returned_at IS NULL;

CREATE VIEW boxes_out AS
    SELECT lb.box_id AS box_id, l.id AS loan_id, l.borrower AS borrower, l.due AS due,
           l.checked_out_at AS out_at
    FROM loan_boxes lb JOIN loans_out l ON l.id = lb.loan_id
    WHERE lb.returned_at IS NULL;
