//! Export of a page as SVG.

use std::fmt::Write;

use super::model::{Item, ItemKind};

/// Renders `items` (in drawing order, e.g. from [`super::Board::items`]) as an SVG document of
/// `width` × `height` board units.
pub fn page_to_svg(items: &[Item], width: f64, height: f64) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}">"#
    );
    out.push_str(r#"<rect width="100%" height="100%" fill="white"/>"#);
    for item in items {
        let color = escape(&item.color);
        let w = item.width;
        match item.kind {
            ItemKind::Stroke => {
                if item.points.is_empty() {
                    continue;
                }
                let mut d = String::new();
                for (i, p) in item.points.iter().enumerate() {
                    let _ = write!(
                        d,
                        "{}{:.2} {:.2}",
                        if i == 0 { "M" } else { " L" },
                        f64::from(p.x) + item.x,
                        f64::from(p.y) + item.y
                    );
                }
                let _ = write!(
                    out,
                    r#"<path d="{d}" fill="none" stroke="{color}" stroke-width="{w}" stroke-linecap="round" stroke-linejoin="round"/>"#
                );
            }
            ItemKind::Line | ItemKind::Arrow => {
                let (x1, y1, x2, y2) = (item.x, item.y, item.x + item.w, item.y + item.h);
                let _ = write!(
                    out,
                    r#"<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="{color}" stroke-width="{w}"/>"#
                );
                if item.kind == ItemKind::Arrow {
                    let angle = item.h.atan2(item.w);
                    let len = (w * 4.0).max(8.0);
                    let a =
                        |da: f64| (x2 - len * (angle + da).cos(), y2 - len * (angle + da).sin());
                    let ((ax, ay), (bx, by)) = (a(0.5), a(-0.5));
                    let _ = write!(
                        out,
                        r#"<polygon points="{x2},{y2} {ax:.2},{ay:.2} {bx:.2},{by:.2}" fill="{color}"/>"#
                    );
                }
            }
            ItemKind::Rect => {
                let _ = write!(
                    out,
                    r#"<rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="{color}" stroke-width="{w}"/>"#,
                    item.x.min(item.x + item.w),
                    item.y.min(item.y + item.h),
                    item.w.abs(),
                    item.h.abs()
                );
            }
            ItemKind::Ellipse => {
                let _ = write!(
                    out,
                    r#"<ellipse cx="{}" cy="{}" rx="{}" ry="{}" fill="none" stroke="{color}" stroke-width="{w}"/>"#,
                    item.x + item.w / 2.0,
                    item.y + item.h / 2.0,
                    item.w.abs() / 2.0,
                    item.h.abs() / 2.0
                );
            }
            ItemKind::Text => {
                let text = escape(item.text.as_deref().unwrap_or(""));
                let _ = write!(
                    out,
                    r#"<text x="{}" y="{}" font-size="{w}" fill="{color}" font-family="sans-serif">{text}</text>"#,
                    item.x, item.y
                );
            }
        }
    }
    out.push_str("</svg>");
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
