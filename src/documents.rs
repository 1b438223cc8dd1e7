//! Printed forms on A4 (`pdf-writer`): a title, the particulars, a table that runs over as
//! many pages as it needs (its header again on each), and signature lines. A box's
//! contents (卷内目录), a disposal certificate (销毁清册) and a loan slip (借阅单) are forms.
//!
//! All text is set in the predefined Chinese font of `labels` (every PDF reader supplies
//! it); widths are estimated as a full em for a Chinese character and half for ASCII, and
//! a cell's text is cut with an ellipsis where it would not fit.

use pdf_writer::{Content, Name, Pdf, Rect, Ref, Str};

use crate::labels::{cjk_font, ucs2};

/// A column of the form's table.
#[derive(Debug, Clone)]
pub struct Column {
    pub head: String,
    pub width_mm: f32,
}

impl Column {
    pub fn new(head: &str, width_mm: f32) -> Column {
        Column {
            head: head.to_string(),
            width_mm,
        }
    }
}

/// A printed form.
#[derive(Debug, Clone, Default)]
pub struct Form {
    pub title: String,
    /// Label and value, one line each, under the title.
    pub particulars: Vec<(String, String)>,
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<String>>,
    /// Lines after the table (a note, a total).
    pub after: Vec<String>,
    /// Who signs: one line each, with a place for the date.
    pub signatures: Vec<String>,
    /// At the foot of each page, before its number.
    pub footer: String,
}

const PT_PER_MM: f32 = 72.0 / 25.4;
const PAGE_W: f32 = 210.0;
const PAGE_H: f32 = 297.0;
const MARGIN: f32 = 18.0;
const ROW_MM: f32 = 6.5;
const BODY_PT: f32 = 9.5;

/// Width of `text` in ems of the font.
fn ems(text: &str) -> f32 {
    text.chars()
        .map(|c| if c.is_ascii() { 0.5 } else { 1.0 })
        .sum()
}

/// `text` cut to `max_mm` at `pt` points, with an ellipsis if cut.
fn fitted(text: &str, max_mm: f32, pt: f32) -> String {
    let em_mm = pt / PT_PER_MM;
    let room = max_mm / em_mm;
    if ems(text) <= room {
        return text.to_string();
    }
    let mut out = String::new();
    let mut used = 1.0; // the ellipsis
    for c in text.chars() {
        used += ems(c.encode_utf8(&mut [0; 4]));
        if used > room {
            break;
        }
        out.push(c);
    }
    out.push('…');
    out
}

/// A page being written, in mm from the top left.
struct Page {
    content: Content,
}

impl Page {
    fn new() -> Page {
        let mut content = Content::new();
        content.set_line_width(0.5);
        Page { content }
    }

    fn text(&mut self, x_mm: f32, top_mm: f32, pt: f32, text: &str) {
        let c = &mut self.content;
        c.begin_text();
        c.set_font(Name(b"F1"), pt);
        c.next_line(x_mm * PT_PER_MM, (PAGE_H - top_mm) * PT_PER_MM);
        c.show(Str(&ucs2(text)));
        c.end_text();
    }

    fn line(&mut self, x1: f32, y1: f32, x2: f32, y2: f32) {
        let c = &mut self.content;
        c.move_to(x1 * PT_PER_MM, (PAGE_H - y1) * PT_PER_MM);
        c.line_to(x2 * PT_PER_MM, (PAGE_H - y2) * PT_PER_MM);
        c.stroke();
    }
}

impl Form {
    fn table_width(&self) -> f32 {
        self.columns.iter().map(|c| c.width_mm).sum()
    }

    /// One row of the table (the header with `bold` rules) with its top at `top`.
    fn row(&self, page: &mut Page, top: f32, cells: &[String]) {
        let mut x = MARGIN;
        for (column, cell) in self.columns.iter().zip(cells) {
            page.text(
                x + 1.2,
                top + ROW_MM - 1.8,
                BODY_PT,
                &fitted(cell, column.width_mm - 2.4, BODY_PT),
            );
            x += column.width_mm;
        }
        page.line(
            MARGIN,
            top + ROW_MM,
            MARGIN + self.table_width(),
            top + ROW_MM,
        );
    }

    fn head(&self, page: &mut Page, top: f32) {
        page.line(MARGIN, top, MARGIN + self.table_width(), top);
        let heads: Vec<String> = self.columns.iter().map(|c| c.head.clone()).collect();
        self.row(page, top, &heads);
    }

    /// The form as PDF.
    pub fn pdf(&self) -> Vec<u8> {
        let bottom = PAGE_H - MARGIN - 8.0;
        let mut pages: Vec<Page> = Vec::new();
        let mut page = Page::new();
        let mut y = MARGIN + 8.0;
        page.text(MARGIN, y, 16.0, &self.title);
        y += 10.0;
        for (label, value) in &self.particulars {
            let line = format!("{label}：{value}");
            page.text(MARGIN, y, 10.5, &fitted(&line, PAGE_W - 2.0 * MARGIN, 10.5));
            y += 6.0;
        }
        y += 3.0;
        if !self.columns.is_empty() {
            self.head(&mut page, y);
            y += ROW_MM;
            for row in &self.rows {
                if y + ROW_MM > bottom {
                    pages.push(std::mem::replace(&mut page, Page::new()));
                    y = MARGIN + 4.0;
                    self.head(&mut page, y);
                    y += ROW_MM;
                }
                self.row(&mut page, y, row);
                y += ROW_MM;
            }
            y += 4.0;
        }
        let closing = 7.0 * self.after.len() as f32 + 12.0 * self.signatures.len() as f32;
        if y + closing > bottom {
            pages.push(std::mem::replace(&mut page, Page::new()));
            y = MARGIN + 4.0;
        }
        for line in &self.after {
            y += 7.0;
            page.text(MARGIN, y, 10.5, line);
        }
        for who in &self.signatures {
            y += 12.0;
            page.text(MARGIN, y, 10.5, &format!("{who}："));
            let x = MARGIN + ems(who) * 10.5 / PT_PER_MM + 6.0;
            page.line(x, y + 1.0, x + 55.0, y + 1.0);
            page.text(x + 62.0, y, 10.5, "日期 Date：");
            page.line(x + 84.0, y + 1.0, x + 119.0, y + 1.0);
        }
        pages.push(page);
        self.write(pages)
    }

    fn write(&self, pages: Vec<Page>) -> Vec<u8> {
        let mut pdf = Pdf::new();
        let catalog = Ref::new(1);
        let tree = Ref::new(2);
        let (song, song_cid, song_descriptor) = (Ref::new(3), Ref::new(4), Ref::new(5));
        let first = 10;
        let refs: Vec<Ref> = (0..pages.len())
            .map(|i| Ref::new(first + 2 * i as i32))
            .collect();
        pdf.catalog(catalog).pages(tree);
        pdf.pages(tree)
            .kids(refs.iter().copied())
            .count(pages.len() as i32);
        cjk_font(&mut pdf, song, song_cid, song_descriptor);
        let count = pages.len();
        for (i, mut page) in pages.into_iter().enumerate() {
            let foot = format!("{}  {}/{}", self.footer, i + 1, count);
            page.text(MARGIN, PAGE_H - MARGIN + 4.0, 8.0, foot.trim_start());
            let content = Ref::new(first + 2 * i as i32 + 1);
            let mut p = pdf.page(refs[i]);
            p.media_box(Rect::new(0.0, 0.0, PAGE_W * PT_PER_MM, PAGE_H * PT_PER_MM))
                .parent(tree)
                .contents(content);
            p.resources().fonts().pair(Name(b"F1"), song);
            drop(p);
            pdf.stream(content, &page.content.finish());
        }
        pdf.finish()
    }
}

/// The loan slip (借阅单): borrower, purpose, kind, due day, the boxes with their titles
/// (`titles` by archive number), every step of the loan with who took it, and the lines the
/// borrower and staff sign.
pub fn loan_slip(
    loan: &crate::loans::LoanView,
    titles: &std::collections::HashMap<String, String>,
    archive: &str,
) -> Form {
    let day = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M").to_string();
    let mut particulars = vec![
        ("单位 Archive".to_string(), archive.to_string()),
        (
            "借阅人 Borrower".to_string(),
            format!("{} {}", loan.borrower.name, loan.borrower.department)
                .trim()
                .to_string(),
        ),
        ("借阅目的 Purpose".to_string(), loan.purpose.clone()),
        ("方式 Kind".to_string(), loan.kind.as_str().to_string()),
        ("归还日期 Due".to_string(), loan.due.to_string()),
        ("状态 State".to_string(), loan.state.as_str().to_string()),
    ];
    for e in &loan.events {
        let note = if e.note.is_empty() {
            String::new()
        } else {
            format!(" · {}", e.note)
        };
        particulars.push((
            e.to.as_str().to_string(),
            format!("{} {}{note}", e.actor, day(e.at)),
        ));
    }
    Form {
        title: format!("档案借阅单 Loan slip No. {}", loan.id),
        particulars,
        columns: vec![
            Column::new("序号 No.", 12.0),
            Column::new("档号 Archive number", 42.0),
            Column::new("题名 Title", 92.0),
            Column::new("归还 Returned", 28.0),
        ],
        rows: loan
            .boxes
            .iter()
            .enumerate()
            .map(|(i, b)| {
                vec![
                    (i + 1).to_string(),
                    b.archive_no.clone(),
                    titles.get(&b.archive_no).cloned().unwrap_or_default(),
                    b.returned_at
                        .map(|t| t.format("%Y-%m-%d").to_string())
                        .unwrap_or_default(),
                ]
            })
            .collect(),
        after: vec![format!(
            "共 {} 盒 ({} boxes)",
            loan.boxes.len(),
            loan.boxes.len()
        )],
        signatures: vec![
            "借阅人 Borrower".into(),
            "经办人 Issued by".into(),
            "审批人 Approved by".into(),
            "归还签收 Received back by".into(),
        ],
        footer: format!("stackroom · loan {}", loan.id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_too_wide_for_its_cell_is_cut_with_an_ellipsis() {
        assert_eq!(fitted("0451-H-001-00001", 60.0, 9.5), "0451-H-001-00001");
        let cut = fitted(&"供用电合同".repeat(20), 30.0, 9.5);
        assert!(
            cut.ends_with('…') && ems(&cut) * 9.5 / PT_PER_MM <= 30.0,
            "{cut}"
        );
    }

    #[test]
    fn a_long_table_runs_over_pages() {
        let form = Form {
            title: "卷内目录".into(),
            particulars: vec![("档号".into(), "0451-H-001-00001".into())],
            columns: vec![Column::new("序号", 15.0), Column::new("题名", 120.0)],
            rows: (1..=100)
                .map(|i| vec![i.to_string(), format!("文件 {i}")])
                .collect(),
            signatures: vec!["立卷人".into()],
            footer: "stackroom".into(),
            ..Form::default()
        };
        let pdf = form.pdf();
        let text = String::from_utf8_lossy(&pdf);
        let pages = text.matches("/Type /Page\n").count() + text.matches("/Type /Page ").count();
        assert_eq!(pages, 3, "100 rows of 6.5 mm on pages of ~250 mm");
        assert!(text.contains("STSong-Light"));
    }
}
