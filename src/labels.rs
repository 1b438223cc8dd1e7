//! Box labels (条码标签): the archive number in large type, a Code 128 barcode of it
//! (encoded by `barcoders`), the title and the home shelf in words, on a label of the size
//! in `[labels]`; as PDF (`pdf-writer`, one page per label) or SVG.
//!
//! The PDF uses the base-14 Helvetica for the archive number and Adobe's predefined CJK
//! font `STSong-Light` (GB1, `UniGB-UCS2-H`) for the title and the shelf, which every PDF
//! reader supplies, so Chinese titles print without a font file in the binary.

use crate::config::LabelSize;
use pdf_writer::types::{CidFontType, FontFlags, SystemInfo};
use pdf_writer::{Content, Name, Pdf, Rect, Ref, Str};

/// What one label says.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub archive_no: String,
    pub title: String,
    /// The home shelf in words (empty for a box on no shelf).
    pub shelf: String,
}

/// Why a label cannot be printed.
#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    #[error("'{0}' is not printable ASCII, which Code 128 (set B) encodes")]
    NotAscii(String),
    /// barcoders' error is no `std::error::Error`; its words are kept.
    #[error("cannot encode '{text}' as Code 128: {why}")]
    Encode { text: String, why: String },
}

/// The Code 128 modules (1 bar, 0 space) of `text`, quiet zones excluded.
pub fn code128(text: &str) -> Result<Vec<u8>, LabelError> {
    if text.is_empty() || !text.chars().all(|c| (' '..='~').contains(&c)) {
        return Err(LabelError::NotAscii(text.to_string()));
    }
    barcoders::sym::code128::Code128::new(format!("\u{0181}{text}"))
        .map(|c| c.encode())
        .map_err(|e| LabelError::Encode {
            text: text.to_string(),
            why: e.to_string(),
        })
}

const PT_PER_MM: f32 = 72.0 / 25.4;
/// Modules of white before and after the bars (the standard asks for at least ten).
const QUIET: usize = 10;

/// Where things go on a label, in mm from its top left.
struct Layout {
    margin: f64,
    module: f64,
    bars_x: f64,
    bars_top: f64,
    bars_height: f64,
}

fn layout(size: LabelSize, modules: usize) -> Layout {
    let margin = 4.0;
    let room = size.width_mm - 2.0 * margin;
    // Not wider than 0.5 mm a module, nor narrower than the label allows.
    let module = (room / (modules + 2 * QUIET) as f64).min(0.5);
    let width = module * modules as f64;
    Layout {
        margin,
        module,
        bars_x: (size.width_mm - width) / 2.0,
        bars_top: size.height_mm * 0.30,
        bars_height: size.height_mm * 0.33,
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Labels as SVG: one after the other down the page, each its own size.
pub fn svg(labels: &[Label], size: LabelSize) -> Result<String, LabelError> {
    let (w, h) = (size.width_mm, size.height_mm);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}mm\" height=\"{}mm\" viewBox=\"0 0 {w} {}\">\n",
        h * labels.len() as f64,
        h * labels.len() as f64
    );
    for (i, label) in labels.iter().enumerate() {
        let modules = code128(&label.archive_no)?;
        let l = layout(size, modules.len());
        let top = h * i as f64;
        out += &format!(
            "<g data-archive-no=\"{}\" transform=\"translate(0 {top})\">\n<rect width=\"{w}\" height=\"{h}\" fill=\"#fff\" stroke=\"#000\" stroke-width=\"0.2\"/>\n",
            escape(&label.archive_no)
        );
        out += &format!(
            "<text x=\"{}\" y=\"{}\" font-family=\"Helvetica, Arial, sans-serif\" font-weight=\"bold\" font-size=\"{}\">{}</text>\n",
            l.margin,
            l.margin + h * 0.16,
            h * 0.18,
            escape(&label.archive_no)
        );
        let mut x = l.bars_x;
        for run in modules.chunk_by(|a, b| a == b) {
            let width = l.module * run.len() as f64;
            if run[0] == 1 {
                out += &format!(
                    "<rect x=\"{x:.3}\" y=\"{:.3}\" width=\"{width:.3}\" height=\"{:.3}\"/>\n",
                    l.bars_top, l.bars_height
                );
            }
            x += width;
        }
        let line = |y: f64, text: &str, px: f64| {
            format!(
                "<text x=\"{}\" y=\"{y:.2}\" font-family=\"sans-serif\" font-size=\"{px:.2}\">{}</text>\n",
                l.margin,
                escape(text)
            )
        };
        out += &line(h * 0.78, &label.title, h * 0.075);
        out += &line(h * 0.92, &label.shelf, h * 0.075);
        out += "</g>\n";
    }
    out += "</svg>\n";
    Ok(out)
}

/// Boxes bound on a range or on shelves, in shelf order: archive number, title, shelf.
pub async fn boxes_on(
    locations: &crate::location::LocationService,
    range: Option<u16>,
    shelves: Vec<String>,
) -> Result<Vec<(String, String, Option<String>)>, crate::store::StoreError> {
    locations
        .store()
        .read(move |conn| {
            let mut out = Vec::new();
            let sql = "SELECT x.archive_no, x.title, s.address FROM bindings b JOIN boxes x ON x.id = b.box_id
                       JOIN shelves s ON s.id = b.shelf_id WHERE ";
            match range {
                Some(r) => {
                    let mut stmt = conn.prepare_cached(&format!("{sql} s.range_id = ?1 ORDER BY s.ordinal, x.archive_no"))?;
                    for row in stmt.query_map([r], |r| Ok((r.get(0)?, r.get(1)?, Some(r.get(2)?))))? {
                        out.push(row?);
                    }
                }
                None => {
                    let mut stmt = conn.prepare_cached(&format!("{sql} s.address = ?1 ORDER BY x.archive_no"))?;
                    for shelf in &shelves {
                        for row in stmt.query_map([shelf], |r| Ok((r.get(0)?, r.get(1)?, Some(r.get(2)?))))? {
                            out.push(row?);
                        }
                    }
                }
            }
            Ok(out)
        })
        .await
}

/// A label from a box's archive number, title and home shelf address.
pub fn label(
    language: crate::shelf::Language,
    archive_no: String,
    title: String,
    shelf: Option<String>,
) -> Label {
    Label {
        archive_no,
        title,
        shelf: shelf
            .and_then(|a| a.parse::<crate::shelf::ShelfAddress>().ok())
            .map(|a| a.human(language))
            .unwrap_or_default(),
    }
}

/// UTF-16BE for the CJK font's UCS-2 encoding; characters beyond it become '?'.
pub(crate) fn ucs2(text: &str) -> Vec<u8> {
    text.chars()
        .flat_map(|c| {
            let u = if (c as u32) < 0x10000 {
                c as u32 as u16
            } else {
                b'?' as u16
            };
            u.to_be_bytes()
        })
        .collect()
}

/// At most `max` characters, with an ellipsis if cut.
pub(crate) fn fit(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        text.chars()
            .take(max.saturating_sub(1))
            .chain(['…'])
            .collect()
    }
}

/// Writes Adobe's predefined Chinese font `STSong-Light` (GB1, `UniGB-UCS2-H`) as the Type 0
/// font `song`, with its CID font and descriptor: every PDF reader supplies the glyphs, so
/// Chinese prints without a font file in the binary. Text for it goes through [`ucs2`].
pub(crate) fn cjk_font(pdf: &mut Pdf, song: Ref, song_cid: Ref, song_descriptor: Ref) {
    pdf.type0_font(song)
        .base_font(Name(b"STSong-Light-UniGB-UCS2-H"))
        .encoding_predefined(Name(b"UniGB-UCS2-H"))
        .descendant_font(song_cid);
    let mut cid = pdf.cid_font(song_cid);
    cid.subtype(CidFontType::Type0)
        .base_font(Name(b"STSong-Light"))
        .system_info(SystemInfo {
            registry: Str(b"Adobe"),
            ordering: Str(b"GB1"),
            supplement: 2,
        })
        .font_descriptor(song_descriptor)
        .default_width(1000.0);
    // GB1's CIDs 1 to 95 are the half-width Latin letters and digits ASCII maps to.
    cid.widths().same(1, 95, 500.0);
    drop(cid);
    pdf.font_descriptor(song_descriptor)
        .name(Name(b"STSong-Light"))
        .flags(FontFlags::NON_SYMBOLIC)
        .bbox(Rect::new(-25.0, -254.0, 1000.0, 880.0))
        .italic_angle(0.0)
        .ascent(880.0)
        .descent(-120.0)
        .cap_height(880.0)
        .stem_v(80.0);
}

/// Labels as a PDF, one page per label.
pub fn pdf(labels: &[Label], size: LabelSize) -> Result<Vec<u8>, LabelError> {
    let mut pdf = Pdf::new();
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let helvetica = Ref::new(3);
    let song = Ref::new(4);
    let song_cid = Ref::new(5);
    let song_descriptor = Ref::new(6);
    let first = 10;
    let pages: Vec<Ref> = (0..labels.len())
        .map(|i| Ref::new(first + 2 * i as i32))
        .collect();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids(pages.iter().copied())
        .count(labels.len() as i32);
    pdf.type1_font(helvetica).base_font(Name(b"Helvetica-Bold"));
    cjk_font(&mut pdf, song, song_cid, song_descriptor);
    let (w, h) = (
        size.width_mm as f32 * PT_PER_MM,
        size.height_mm as f32 * PT_PER_MM,
    );
    for (i, label) in labels.iter().enumerate() {
        let modules = code128(&label.archive_no)?;
        let l = layout(size, modules.len());
        let mm = |v: f64| v as f32 * PT_PER_MM;
        // PDF's y runs up from the bottom.
        let y = |top_mm: f64| h - mm(top_mm);
        let mut c = Content::new();
        c.set_fill_gray(0.0);
        let mut x = l.bars_x;
        for run in modules.chunk_by(|a, b| a == b) {
            let width = l.module * run.len() as f64;
            if run[0] == 1 {
                c.rect(
                    mm(x),
                    y(l.bars_top + l.bars_height),
                    mm(width),
                    mm(l.bars_height),
                );
            }
            x += width;
        }
        c.fill_nonzero();
        let text = |c: &mut Content, font: &[u8], size: f32, top_mm: f64, bytes: &[u8]| {
            c.begin_text();
            c.set_font(Name(font), size);
            c.next_line(mm(l.margin), y(top_mm));
            c.show(Str(bytes));
            c.end_text();
        };
        let big = (size.height_mm * 0.18) as f32 * PT_PER_MM;
        text(
            &mut c,
            b"F1",
            big,
            l.margin + size.height_mm * 0.16,
            label.archive_no.as_bytes(),
        );
        let small = (size.height_mm * 0.075) as f32 * PT_PER_MM;
        let chars = ((size.width_mm - 2.0 * l.margin) / (size.height_mm * 0.075)) as usize;
        text(
            &mut c,
            b"F2",
            small,
            size.height_mm * 0.78,
            &ucs2(&fit(&label.title, chars)),
        );
        text(
            &mut c,
            b"F2",
            small,
            size.height_mm * 0.92,
            &ucs2(&fit(&label.shelf, chars)),
        );
        let content = Ref::new(first + 2 * i as i32 + 1);
        let mut page = pdf.page(pages[i]);
        page.media_box(Rect::new(0.0, 0.0, w, h))
            .parent(tree)
            .contents(content);
        page.resources()
            .fonts()
            .pair(Name(b"F1"), helvetica)
            .pair(Name(b"F2"), song);
        drop(page);
        pdf.stream(content, &c.finish());
    }
    Ok(pdf.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label() -> Label {
        Label {
            archive_no: "0451-H-001-00001".into(),
            title: "高压客户档案 供电合同 2024".into(),
            shelf: "1区 01列 右 1节 1层".into(),
        }
    }

    #[test]
    fn code128_starts_and_stops_as_the_standard_says() {
        let m = code128("0451-H-001-00001").unwrap();
        // Start B (11010010000) and the stop pattern with its final bar (1100011101011).
        assert_eq!(&m[..11], &[1, 1, 0, 1, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(&m[m.len() - 13..], &[1, 1, 0, 0, 0, 1, 1, 1, 0, 1, 0, 1, 1]);
        // 11 modules per symbol: start, 16 characters, check, and the 13-module stop.
        assert_eq!(m.len(), 11 * 18 + 13);
        assert!(code128("档案").is_err());
        assert!(code128("").is_err());
    }

    #[test]
    fn a_pdf_has_a_page_per_label_and_the_svg_its_bars() {
        let labels = [
            label(),
            Label {
                archive_no: "0451-H-001-00002".into(),
                ..label()
            },
        ];
        let pdf = pdf(&labels, LabelSize::default()).unwrap();
        assert!(pdf.starts_with(b"%PDF-"));
        let text = String::from_utf8_lossy(&pdf);
        assert_eq!(
            text.matches("/Type /Page\n").count() + text.matches("/Type /Page ").count(),
            2,
            "{text}"
        );
        assert!(text.contains("STSong-Light"));
        let svg = svg(&labels, LabelSize::default()).unwrap();
        assert_eq!(svg.matches("data-archive-no").count(), 2);
        assert!(svg.contains("高压客户档案"));
    }
}
